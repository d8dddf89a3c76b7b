/**
 * How amounts, times and reservation states read in each language's texts
 * (src/errors/catalogue.ts). Amounts are minor units: English shows them as
 * they travel; Chinese shows yuan (fen / 100), as a borrower reads them.
 * Chinese times are Beijing time (the service does not know the borrower's
 * zone; UTC would read wrong to nearly every zh-CN customer).
 */
import type { Language } from './language.js';

export interface Formats {
  money(n: number | null | undefined): string;
  time(ms: number | null | undefined): string;
  reservationStatus(status: string | undefined): string;
}

const zhTime = new Intl.DateTimeFormat('zh-CN', {
  timeZone: 'Asia/Shanghai',
  year: 'numeric',
  month: 'long',
  day: 'numeric',
  hour: '2-digit',
  minute: '2-digit',
  hour12: false,
});
const zhMoney = new Intl.NumberFormat('zh-CN', { minimumFractionDigits: 2, maximumFractionDigits: 2 });

const ZH_STATUS: Record<string, string> = {
  held: '保留中',
  committed: '已确认借款',
  released: '已释放',
  expired: '已过期',
  settled: '已放款',
  reversed: '已撤销',
  settlement_unknown: '放款结果待核实',
};

export const FORMATS: Record<Language, Formats> = {
  en: {
    money: (n) => (n === undefined || n === null ? 'unknown' : String(n)),
    time: (t) => (t === undefined || t === null ? 'an unknown time' : new Date(t).toISOString()),
    reservationStatus: (s) => s ?? 'in another state',
  },
  zh: {
    money: (n) => (n === undefined || n === null ? '未知金额' : `${zhMoney.format(n / 100)} 元`),
    time: (t) => (t === undefined || t === null ? '未知时间' : `${zhTime.format(t)}（北京时间）`),
    reservationStatus: (s) => (s ? (ZH_STATUS[s] ?? s) : '其他状态'),
  },
};
