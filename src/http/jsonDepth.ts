/**
 * The contract's nesting limit: JSON nested deeper than 32 levels anywhere in
 * a body is 400, answered at once. Checked on the raw bytes in one iterative
 * pass before JSON.parse builds anything, so a 14 KB body 7,000 levels deep
 * costs microseconds and no recursion (nothing later walks a deep value).
 */
export const MAX_JSON_DEPTH = 32;

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const OPEN_BRACKET = 0x5b;
const CLOSE_BRACKET = 0x5d;
const OPEN_BRACE = 0x7b;
const CLOSE_BRACE = 0x7d;

/**
 * True when `json` (UTF-8 bytes or a string) opens more than `max` arrays or
 * objects inside one another. Brackets inside strings do not count. Invalid
 * JSON is not judged here (JSON.parse refuses it afterwards); every byte of a
 * UTF-8 multi-byte character is >= 0x80, so it never looks like a bracket.
 */
export function jsonDepthExceeds(json: Uint8Array | string, max: number = MAX_JSON_DEPTH): boolean {
  const at = typeof json === 'string' ? (i: number) => json.charCodeAt(i) : (i: number) => json[i]!;
  let depth = 0;
  let inString = false;
  for (let i = 0; i < json.length; i++) {
    const c = at(i);
    if (inString) {
      if (c === BACKSLASH) i++;
      else if (c === QUOTE) inString = false;
    } else if (c === QUOTE) {
      inString = true;
    } else if (c === OPEN_BRACE || c === OPEN_BRACKET) {
      if (++depth > max) return true;
    } else if (c === CLOSE_BRACE || c === CLOSE_BRACKET) {
      depth--;
    }
  }
  return false;
}
