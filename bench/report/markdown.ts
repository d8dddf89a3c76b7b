/** The run's Markdown summary: targets first, then every figure behind them. */
import { relative } from 'node:path';
import { resultsDir } from '../lib/paths.js';
import { oursReference } from '../baselines/redisBenchmark.js';
import type { ClusterComparison } from '../cluster/clusterComparison.js';
import type { BenchResults } from './results.js';

const n = (x: number) => Math.round(x).toLocaleString('en');
const cell = (s: unknown) => String(s).replace(/\|/g, '\\|').replace(/\n/g, ' ');
const table = (head: string[], rows: unknown[][]) =>
  [
    `| ${head.join(' | ')} |`,
    `|${head.map(() => '---').join('|')}|`,
    ...rows.map((r) => `| ${r.map(cell).join(' | ')} |`),
  ].join('\n');
const cpuText = (cpu: Record<string, number[]>) =>
  Object.entries(cpu)
    .map(([k, v]) => `${k} ${v.map((x) => `${Math.round(x * 100)}%`).join('+')}`)
    .join(', ');

export function renderMarkdown(r: BenchResults, chartFile: string): string {
  const m = r.machine;
  const out: string[] = [];
  out.push(
    `# Launch-spike benchmark: ` +
      `${r.mode === 'smoke' ? 'smoke run' : r.mode === 'full' ? 'full run' : `${r.mode} only`}, ${r.startedAt}`,
  );
  out.push('');
  out.push(
    `\`${r.command}\` (seed ${r.seed}) on ${m.cpus} × ${m.cpuModel}, ${m.memoryGiB} GiB, ` +
      `${m.platform}, Node ${m.node}, ${m.redisServer.replace(/ sha=.*$/, '')}; ` +
      `load average at start ${m.loadAverageAtStart.join(' / ')}` +
      (r.machineLoad
        ? `, during the run the CPUs were ${r.machineLoad.busyPercent}% busy, ` +
          `${r.machineLoad.iowaitPercent}% in I/O wait, ${r.machineLoad.stealPercent}% stolen by the hypervisor`
        : '') +
      `. Took ${r.seconds ?? '?'} s. ` +
      (`Every figure is a ratio against a baseline measured in the same run: ` +
        `other work on this machine moves the absolute numbers.`),
  );
  out.push('');
  out.push(
    `Set-up: Redis with AOF on, appendfsync ${r.setup.redis.appendfsync} (as ` +
      `production), automatic AOF rewrite off during the run; ` +
      (`scenarios against ${r.setup.scenarioApiProcesses} API processes (node:cluster, ` +
        `ROLE=api, LOG_LEVEL=${r.setup.apiLogLevel}) and one ROLE=worker process; `) +
      (`test ledger failing ${r.setup.ledger.failRate * 100}% of attempts and rejecting ` +
        `${r.setup.ledger.rejectRate * 100}% of customers; ${r.setup.loadGenerator}.`),
  );
  out.push('');
  out.push(`**Invariants: ${r.violations.length === 0 ? 'all held' : `${r.violations.length} VIOLATION(S)`}.**`);
  for (const v of r.violations) out.push(`- ${v}`);
  if (r.warnings.length > 0) {
    out.push('');
    out.push('Warnings (figures to doubt):');
    for (const w of r.warnings) out.push(`- ${w}`);
  }
  out.push('');
  out.push('## Targets');
  out.push('');
  out.push(
    table(
      ['target', 'measured', 'goal', 'verdict'],
      r.targets.map((t) => [
        t.target,
        t.measured,
        t.goal,
        t.verdict === 'pass' ? '**pass**' : t.verdict === 'miss' ? '**MISS**' : t.verdict,
      ]),
    ),
  );
  out.push('');

  if (r.hotPath) {
    const h = r.hotPath;
    out.push('## Hot path against minimal equivalents (issue 11)');
    out.push('');
    out.push(`Pinning: ${h.pinning}.`);
    out.push('');
    out.push(
      table(
        [
          'operation',
          'ours req/s',
          'bare req/s',
          'ratio',
          'API CPU µs per answer ours / bare',
          'ratio',
          'ours p99 ms',
          'bare p99 ms',
          'ratio',
          'µs per FCALL / EVALSHA during the runs',
          'ratio',
          'API / bare CPU',
          'Redis CPU ours / bare',
          'statuses ours',
        ],
        h.http.map((q) => [
          q.op,
          n(q.ours.rps),
          n(q.bare.rps),
          q.rpsRatio,
          `${q.apiCpuUsecPerRequest.ours} / ${q.apiCpuUsecPerRequest.bare}`,
          q.cpuEfficiencyRatio,
          q.ours.latency.p99,
          q.bare.latency.p99,
          q.p99Ratio,
          `${q.ours.script.usecPerCall} / ${q.bare.script.usecPerCall}`,
          q.usecRatio,
          `${cpuText({ api: q.ours.cpu.api ?? [] })} / ${cpuText({ bare: q.bare.cpu.api ?? [] })}`,
          `${cpuText({ ours: q.ours.cpu.redis ?? [] })} / ${cpuText({ bare: q.bare.cpu.redis ?? [] })}`,
          JSON.stringify(q.ours.statusCounts),
        ]),
      ),
    );
    out.push('');
    out.push(
      table(
        ['operation', 'tool', 'ours calls/s', 'minimal calls/s', 'µs per call ours / minimal', 'ratio'],
        h.redis.map((q) => [
          q.op,
          q.tool,
          n(q.ours.rps),
          n(q.minimal.rps),
          `${q.ours.script.usecPerCall} / ${q.minimal.script.usecPerCall}`,
          q.usecRatio,
        ]),
      ),
    );
    for (const q of h.redis) if (q.ours.command) out.push('', `\`${q.ours.command}\``, '', `\`${q.minimal.command}\``);
    out.push('');
    if (h.half) {
      out.push(
        `Half the peak: ${n(h.half.rate)}/s paced; in the service p50 ${h.half.inService.p50Ms} ms, ` +
          `p99 ${h.half.inService.p99Ms} ms (${n(h.half.inService.count)} reserves); ` +
          (`the generator saw p99 ${h.half.generatorP99Ms.ours} ms (bare app ` +
            `${h.half.generatorP99Ms.bare} ms); statuses ` +
            `${JSON.stringify(h.half.statusCounts)}.`),
      );
      out.push('');
    }
    for (const c of h.checks) out.push(`- ${c.ok ? 'ok' : '**FAIL**'} ${c.name}: ${c.detail}`);
    out.push('');
  }

  if (r.scenarios.length > 0) {
    out.push('## Scenarios');
    out.push('');
    out.push(`![throughput, p99 and pool remaining over time](${chartFile})`);
    out.push('');
    out.push(
      table(
        [
          'scenario',
          'answers',
          'answers/s',
          'p50 / p99 ms',
          'granted (holds)',
          'refused',
          'no answer: timeouts / 5xx / cut off by the stop → sent again ' +
            'with the same key (answered from the stored answer)',
          'CPU (share of a core)',
          'invariants',
        ],
        r.scenarios.map((s) => {
          const t = s.totals as {
            granted: number;
            holds: number;
            refusals: Record<string, number>;
            lostAnswers: number;
            replays: number;
            replayedStored: number;
          };
          const refused =
            Object.entries(t.refusals)
              .map(([k, v]) => `${k} ${n(v)}`)
              .join(', ') || '0';
          const bad = s.checks.filter((c) => !c.ok).length;
          return [
            s.title,
            n(s.load.responses),
            n(s.load.rps),
            `${s.load.latency.p50} / ${s.load.latency.p99}`,
            `${n(t.granted)} (${n(t.holds)})`,
            refused,
            `${s.load.timeouts} / ${t.lostAnswers} / ` +
              `${t.replays - s.load.timeouts - t.lostAnswers} → ${t.replays} ` +
              `(${t.replayedStored} stored)`,
            cpuText(s.cpu),
            bad === 0 ? `${s.checks.length} held` : `**${bad} FAILED**`,
          ];
        }),
      ),
    );
    out.push('');
    for (const s of r.scenarios) {
      out.push(`**${s.title}.** ${s.description}.`);
      out.push('');
      for (const c of s.checks) out.push(`- ${c.ok ? '✓' : '✗'} \`${c.name}\`: ${c.detail}`);
      out.push('');
    }
  }

  out.push('## Baselines');
  out.push('');
  const rb = r.baselines.redisBenchmark;
  if (rb) {
    out.push(
      table(
        ['redis-benchmark EVALSHA', '-P', 'requests', 'EVALSHA/s', 'p50 / p99 ms'],
        [rb.ours, rb.minimal, rb.oursP1, rb.minimalP1, ...(rb.oursAgain ? [rb.oursAgain] : [])].map((b) => [
          b.label,
          b.pipeline,
          n(b.requests),
          n(b.rps),
          `${b.p50Ms} / ${b.p99Ms}`,
        ]),
      ),
    );
    out.push('');
    out.push(`Our script: \`${rb.ours.command}\``);
    out.push('');
    const o = rb.ours.profile;
    const mi = rb.minimal.profile;
    // Commands the scripts call (the harness's own CONFIG and INFO calls are left out).
    const names = [
      ...new Set([...o.perCommand, ...mi.perCommand].filter((c) => c.callsPerReserve > 0).map((c) => c.command)),
    ];
    const find = (p: typeof o, c: string) => p.perCommand.find((x) => x.command === c);
    out.push(
      'Where one EVALSHA goes inside Redis at -P 16 (INFO commandstats, ' +
        'which counts the commands a script calls; µs per reserve):',
    );
    out.push('');
    out.push(
      table(
        ['', 'our script: calls', 'µs', 'minimal: calls', 'µs'],
        [
          ...names.map((c) => [
            c,
            find(o, c)?.callsPerReserve ?? 0,
            find(o, c)?.usecPerReserve ?? 0,
            find(mi, c)?.callsPerReserve ?? 0,
            find(mi, c)?.usecPerReserve ?? 0,
          ]),
          ['Lua itself (EVALSHA time less its commands)', '', o.luaUsecPerCall, '', mi.luaUsecPerCall],
          ['EVALSHA in all', '', o.evalshaUsecPerCall, '', mi.evalshaUsecPerCall],
          ['EVALSHA calls per socket read (batching)', '', o.evalshaPerRead, '', mi.evalshaPerRead],
          [
            'wall time per reserve at the measured rate (adds network, parsing, AOF write and fsync)',
            '',
            o.wallUsecPerCall,
            '',
            mi.wallUsecPerCall,
          ],
        ],
      ),
    );
    out.push('');
    out.push(
      `For comparison only (production runs appendfsync always): at appendfsync everysec, ours ` +
        `${n(rb.everysec.ours.rps)}/s and minimal ${n(rb.everysec.minimal.rps)}/s, ` +
        `a ratio of ${Math.round(rb.everysec.ratio * 1000) / 10}%.`,
    );
    out.push('');
    if (rb.stages?.length) {
      out.push(
        `The same reserve called as EVALSHA of a standalone script and as FCALL of the Functions library ` +
          `(µs per call, -P 16; the minimal script takes ${mi.evalshaUsecPerCall} µs in all):`,
      );
      out.push('');
      out.push(
        table(
          ['call', 'µs per call', 'µs more than EVALSHA'],
          rb.stages.map((s) => [s.step, s.usecUpTo, s.usec]),
        ),
      );
      out.push('');
    }
  }
  if (r.baselines.engineDirect.length > 0) {
    out.push(
      table(
        [
          'engine.reserve from Node (no HTTP)',
          'calls/s',
          'p50 / p99 ms',
          'vs redis-benchmark (our script, -P 16, mean of before and after)',
          'CPU (share of a core)',
          'in Redis: EVALSHA µs / wall µs per call, calls per read',
        ],
        [
          ...r.baselines.engineDirect.map((e) => [
            e.label,
            n(e.rps),
            `${e.latency.p50} / ${e.latency.p99}`,
            rb ? `${Math.round((e.rps / oursReference(rb)) * 1000) / 10}%` : '—',
            e.cpu ? cpuText(e.cpu) : '—',
            e.script ? `${e.script.evalshaUsecPerCall} / ${e.script.wallUsecPerCall}, ${e.script.evalshaPerRead}` : '—',
          ]),
          ...(rb
            ? [
                [
                  'redis-benchmark, our script, -P 16 × 50 clients',
                  n(rb.ours.rps),
                  `${rb.ours.p50Ms} / ${rb.ours.p99Ms}`,
                  '100%',
                  '—',
                  `${rb.ours.profile.evalshaUsecPerCall} / ` +
                    `${rb.ours.profile.wallUsecPerCall}, ` +
                    `${rb.ours.profile.evalshaPerRead}`,
                ],
              ]
            : []),
        ],
      ),
    );
    out.push('');
    for (const e of r.baselines.engineDirect) {
      if (!e.profile) continue;
      out.push(
        `Where the calling process spends its time, engine.reserve at ${e.inFlight} in flight (in-process ` +
          `CPU profile, self time, idle excluded; ${relative(resultsDir, e.profile.file)}):`,
      );
      out.push('');
      out.push(
        table(
          ['area', 'self time'],
          e.profile.byArea.slice(0, 10).map((a) => [a.area, `${a.percent}%`]),
        ),
      );
      out.push('');
      out.push(
        table(
          ['function', 'self time'],
          e.profile.topFunctions.slice(0, 10).map((f) => [f.fn, `${f.percent}%`]),
        ),
      );
      out.push('');
    }
  }
  const pg = r.baselines.postgres;
  if (pg) {
    out.push(
      pg.skipped
        ? `PostgreSQL peer: skipped: ${pg.reason}.`
        : `PostgreSQL peer (PostgreSQL ${pg.version}, ${Object.entries(pg.settings)
            .map(([k, v]) => `${k}=${v}`)
            .join(', ')}): ` +
            (`${n(pg.run.rps)} reserves/s with ${pg.run.inFlight} in flight over a pool of ` +
              `${pg.poolSize} connections, p50 ${pg.run.latency.p50} ms, p99 ${pg.run.latency.p99} ms `) +
            (`(one PL/pgSQL call per reserve: conditional UPDATE of the line row and of ` +
              `the hot pool row, INSERT of the hold, one durable commit).`),
    );
    out.push('');
  }
  if (r.baselines.naive.length > 0) {
    out.push(
      table(
        [
          'naive GET-then-DECRBY, the spike plan',
          'granted',
          'capacity',
          'oversold',
          'lines over limit (worst overdraw; each customer draws once)',
        ],
        r.baselines.naive.map((x) => [
          `${n(x.inFlight)} in flight`,
          n(x.granted),
          n(x.capacity),
          `${n(x.oversold)} (${x.oversoldPercentOfPool}% of the pool)`,
          `${n(x.linesOverLimit)} (${n(x.worstLineOverdraw)})`,
        ]),
      ),
    );
    out.push('');
  }
  const http = r.http;
  if (http) {
    out.push('## HTTP and node:cluster');
    out.push('');
    const runs = [http.ours1, http.bare, http.hello, http.ours2, http.ours2Shared];
    out.push(
      table(
        ['closed loop, same connections', 'connections', 'req/s', 'p50 / p99 ms', 'answers', 'CPU (share of a core)'],
        runs.map((x) => [
          x.title,
          x.connections,
          n(x.rps),
          `${x.latency.p50} / ${x.latency.p99}`,
          Object.entries(x.statusCounts)
            .map(([k, v]) => `${k}: ${n(v)}`)
            .join(', '),
          cpuText(x.cpu),
        ]),
      ),
    );
    out.push('');
    out.push(
      table(
        ['paced (open loop), latency from the scheduled send', 'rate', 'p50 / p90 / p99 / max ms', 'answers'],
        [http.oursHalf1, http.bareHalf, http.oursHalf2, http.oursHalf1Everysec].map((x) => [
          x.title,
          `${n(x.rate)}/s`,
          `${x.latency.p50} / ${x.latency.p90} / ${x.latency.p99} / ${x.latency.max}`,
          Object.entries(x.statusCounts)
            .map(([k, v]) => `${k}: ${n(v)}`)
            .join(', '),
        ]),
      ),
    );
    out.push('');
    if (http.profile) {
      out.push(`### Where one API process spends its time at peak (\`--cpu-prof\`, self time, idle excluded)`);
      out.push('');
      out.push(
        `Busy ${n(http.profile.busyMs)} ms sampled, idle ${http.profile.idlePercent}%. The .cpuprofile ` +
          `(${relative(resultsDir, http.profile.file)}) opens as a flame graph in Chrome DevTools or speedscope.`,
      );
      out.push('');
      out.push(
        table(
          ['area', 'self time'],
          http.profile.byArea.map((a) => [a.area, `${a.percent}%`]),
        ),
      );
      out.push('');
      out.push(
        table(
          ['function', 'self time'],
          http.profile.topFunctions.map((f) => [f.fn, `${f.percent}%`]),
        ),
      );
      out.push('');
    }
  }
  if (r.cluster) out.push(...clusterSection(r.cluster));
  if (r.launchImport) {
    const i = r.launchImport;
    out.push(
      `Bulk import of the launch lines: ${n(i.rows)} rows streamed as NDJSON in ` +
        `${i.seconds.toFixed(1)} s (${n(i.rowsPerSecond)} rows/s), ${n(i.upserted)} upserted.`,
    );
    out.push('');
  }
  return out.join('\n') + '\n';
}

const x = (v: number) => (Number.isFinite(v) ? `${Math.round(v * 100) / 100}×` : '—');

function clusterSection(c: ClusterComparison): string[] {
  const out: string[] = [];
  const perMaster = Object.entries(c.setup.manyProductsPerMaster)
    .map(([p, k]) => `${p}: ${k}`)
    .join(', ');
  const scenarioTitle = {
    spike: 'spike (the launch plan: one hot product)',
    'many-products': `many products (${c.setup.manyProducts} products over the masters)`,
  };
  out.push('## Cluster vs one node');
  out.push('');
  out.push(
    `The spike of a ${n(c.setup.customers)}-customer launch plan (${c.setup.spikeConnections} ` +
      `connections; the launch product lives on the master on port ${c.setup.launchProductMaster}) ` +
      (`and many products (${c.setup.manyConnections} connections for ` +
        `${c.setup.manySeconds} s; products per master: ${perMaster}), `) +
      (`against ${c.setup.apiProcesses} API processes and a jobs process on one redis-server, then on a local ` +
        `Redis Cluster of ${c.setup.masters} masters and ${c.setup.masters * c.setup.replicasPerMaster} replicas `) +
      (`(REDIS_CLUSTER_NODES) with REDIS_WAIT_REPLICAS=0 and =1; every Redis with AOF on, appendfsync ` +
        `always. All on the same shared cores: more masters cannot add throughput here; `) +
      (`the FCALL columns (Redis's INFO commandstats per master, reset before each load) show how the work ` +
        `spreads. They count every FCALL during the load, the jobs process's per-product sweeps and audits too ` +
        `(with 100 products and a short load, a visible share: compare calls with answers), and µs per call is ` +
        `time on Redis's thread, which grows when the shared cores deschedule Redis mid-call.`),
  );
  out.push('');
  out.push(
    table(
      ['scenario', 'ratio', 'cluster (WAIT 0) vs one node', 'cluster WAIT 1 vs WAIT 0'],
      c.ratios.flatMap((r) => [
        [scenarioTitle[r.scenario], 'throughput', x(r.clusterVsOne.rps), x(r.wait1VsWait0.rps)],
        [scenarioTitle[r.scenario], 'p99', x(r.clusterVsOne.p99), x(r.wait1VsWait0.p99)],
      ]),
    ),
  );
  out.push('');
  out.push(
    table(
      [
        'leg',
        'scenario',
        'answers',
        'answers/s',
        'p50 / p99 ms',
        'FCALL per node: calls (share), µs per call',
        'CPU (share of a core)',
        'invariants',
      ],
      c.legs.flatMap((l) =>
        l.scenarios.map((s) => {
          const bad = s.checks.filter((k) => !k.ok).length;
          return [
            l.name,
            s.scenario,
            n(s.responses),
            n(s.rps),
            `${s.p50} / ${s.p99}`,
            s.fcall
              .map((f) => `${f.port}: ${n(f.calls)} (${Math.round(f.callShare * 100)}%), ${f.usecPerCall} µs`)
              .join('; '),
            cpuText(s.cpu),
            bad === 0 ? `${s.checks.length} held` : `**${bad} FAILED**`,
          ];
        }),
      ),
    ),
  );
  out.push('');
  const w = c.engineWait;
  if (w) {
    out.push(
      `Engine level, no HTTP (engine.reserve directly, ${w.setup.inFlight} in flight over ${w.setup.products} ` +
        `products, 3 per master, ${w.setup.rounds} alternating round(s) of ${w.setup.secondsPerRound} s): ` +
        (`WAIT 0 ${n(w.wait0.rps)} reserves/s, p99 ${w.wait0.p99} ms; WAIT 1 ${n(w.wait1.rps)} reserves/s, p99 ` +
          `${w.wait1.p99} ms: throughput ${x(w.throughputRatio)}, p99 ${x(w.p99Ratio)}, p50 ${x(w.p50Ratio)}. `) +
        (`Audit after: ${w.invariants.products} products, outcomes ` +
          `${w.invariants.outcomes.join(', ')}, ${w.invariants.violations} violations.`),
    );
    out.push('');
  }
  return out;
}
