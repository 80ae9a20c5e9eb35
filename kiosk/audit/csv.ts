/**
 * The kiosk's CSV: the one formula-safe writer both programs share
 * (manifest/csv.ts), so `log export` and the review's export quote and
 * neutralise cells the same way as the agent's `log export`.
 */
export { csvCell, csvRecord } from '../../manifest/csv.ts';
