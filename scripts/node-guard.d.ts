/** Types for node-guard.js (plain JavaScript so that any Node can run it). */
export declare const KIOSK_NODE_FLAGS: readonly string[];
export declare function runOnSupportedNode(mainUrl: URL, what: string, nodeFlags?: readonly string[]): void;
