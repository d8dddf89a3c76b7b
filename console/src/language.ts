/** The console's two languages: sent as Accept-Language, and the language of its own texts. */
export type Language = 'en' | 'zh-CN';
