/**
 * Reads over many products in as few round trips as the topology allows:
 * one pipeline on a single node; on a Redis Cluster one pipeline per slot
 * owner (ioredis refuses a pipeline whose keys live on different nodes, and
 * Redis would answer MOVED for them). No command here spans two slots: each
 * item's commands name one product's keys, all under its hash tag.
 *
 * After a failover the slot map this grouping used can be stale: an item
 * whose commands failed (MOVED, a closed connection) is read again on its
 * own through the Cluster client, which follows redirections; what fails
 * again throws, and the job's next run reads it again. Only for reads: a
 * write is never re-sent (src/redis/topology.ts).
 */
import calculateSlot from 'cluster-key-slot';
import type { ChainableCommander } from 'ioredis';
import { assertClusterReady, isCluster, type RedisClient } from './topology.js';

export type Reply = [error: Error | null, value: unknown];

/**
 * Queues `add(pipeline, item)` for each item (each item's commands on keys of
 * one slot, `slotKey(item)` being one of them) and answers each item's replies.
 */
export async function pipelinePerNode<T>(
  client: RedisClient,
  items: readonly T[],
  slotKey: (item: T) => string,
  add: (pipeline: ChainableCommander, item: T) => void,
): Promise<Reply[][]> {
  if (!isCluster(client)) return runGroup(client, items, add);
  const groups = new Map<string, number[]>();
  items.forEach((item, index) => {
    const owner = client.slots[calculateSlot(slotKey(item))]?.join(';') ?? 'unknown';
    const group = groups.get(owner) ?? [];
    group.push(index);
    groups.set(owner, group);
  });
  const answers: Reply[][] = new Array(items.length);
  await Promise.all(
    [...groups.values()].map(async (indexes) => {
      const groupItems = indexes.map((i) => items[i]!);
      const replies = await runGroup(client, groupItems, add).catch(() => undefined);
      await Promise.all(
        indexes.map(async (itemIndex, j) => {
          const mine = replies?.[j];
          answers[itemIndex] =
            mine && mine.every(([err]) => !err) ? mine : await readAgainAlone(client, items[itemIndex]!, add);
        }),
      );
    }),
  );
  return answers;
}

async function runGroup<T>(
  client: RedisClient,
  items: readonly T[],
  add: (p: ChainableCommander, item: T) => void,
): Promise<Reply[][]> {
  assertClusterReady(client);
  const pipeline = client.pipeline();
  const counts = items.map((item) => {
    const before = pipeline.length;
    add(pipeline, item);
    return pipeline.length - before;
  });
  const flat = ((await pipeline.exec()) ?? []) as Reply[];
  let at = 0;
  return counts.map((n) => {
    const mine = flat.slice(at, at + n);
    at += n;
    while (mine.length < n) mine.push([new Error('no reply'), null]);
    return mine;
  });
}

/** One item's commands through the Cluster client (which follows MOVED); throws when they fail again. */
async function readAgainAlone<T>(
  client: RedisClient,
  item: T,
  add: (p: ChainableCommander, item: T) => void,
): Promise<Reply[]> {
  const [replies] = await runGroup(client, [item], add);
  const failed = replies!.find(([err]) => err);
  if (failed) throw failed[0];
  return replies!;
}

/** Throws the reply's error, else answers its value. */
export function valueOf(reply: Reply | undefined): unknown {
  if (!reply) throw new Error('missing reply');
  if (reply[0]) throw reply[0];
  return reply[1];
}
