/** Display helpers: amounts are integers in minor units, shown with separators; times in UTC. */
export function amount(n: number | null | undefined): string {
  return typeof n === 'number' ? n.toLocaleString('en-US') : '—';
}

export function time(iso: string | null | undefined): string {
  return iso ? iso.replace('T', ' ').replace(/\.\d+Z$/, 'Z') : '—';
}

export function windowText(opensAt: string | null | undefined, closesAt: string | null | undefined): string {
  if (!opensAt && !closesAt) return 'always';
  return `${opensAt ? time(opensAt) : '…'} → ${closesAt ? time(closesAt) : '…'}`;
}
