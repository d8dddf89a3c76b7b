/**
 * The answer's language from Accept-Language (contract: "Languages"):
 * Simplified Chinese for `zh`, `zh-CN`, `zh-Hans` (also `zh-Hans-*`), or
 * when that is the best match of a weighted list; English otherwise.
 *
 * Not express's `req.acceptsLanguages` (negotiator): it matches by prefix,
 * so `zh-TW` (Traditional) would get Simplified Chinese, which the contract
 * does not ask for.
 */
export const LANGUAGES = ['en', 'zh'] as const;
export type Language = (typeof LANGUAGES)[number];

/** Which of our languages a language range names, if any. */
function languageOf(range: string): Language | '*' | undefined {
  const tag = range.toLowerCase();
  if (tag === '*') return '*';
  if (tag === 'zh' || tag === 'zh-cn' || tag === 'zh-hans' || tag.startsWith('zh-hans-')) return 'zh';
  if (tag === 'en' || tag.startsWith('en-')) return 'en';
  return undefined;
}

/**
 * The language whose best entry has the highest weight; on a tie the one
 * listed first; English when nothing we have is acceptable. `q=0` means
 * "not this one" (RFC 9110 §12.4.2).
 */
export function chooseLanguage(acceptLanguage: string | undefined): Language {
  if (!acceptLanguage) return 'en';
  let best: { language: Language; q: number } | undefined;
  const refused = new Set<Language>();
  for (const entry of acceptLanguage.split(',').slice(0, 50)) {
    const [range = '', ...params] = entry.trim().split(';');
    const qParam = params.map((p) => p.trim()).find((p) => /^q=/i.test(p));
    const q = qParam === undefined ? 1 : Number(qParam.slice(2));
    if (!Number.isFinite(q) || q < 0 || q > 1) continue;
    const named = languageOf(range.trim());
    if (named === undefined) continue;
    // `*` stands for any language not named elsewhere: English, the default.
    const language: Language = named === '*' ? 'en' : named;
    if (q === 0) {
      refused.add(language);
      continue;
    }
    if (!best || q > best.q) best = { language, q };
  }
  if (best && !refused.has(best.language)) return best.language;
  return 'en';
}
