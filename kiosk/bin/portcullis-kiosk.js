#!/usr/bin/env -S node --max-semi-space-size=4 --optimize-for-size
// Starts the kiosk CLI on Node.js 24 or later; an older Node re-runs it with
// the project's pinned Node (installed by ./portcullis setup). The shebang gives
// Node the kiosk's V8 flags (KIOSK_NODE_FLAGS); started any other way, the guard
// re-runs it with them.
import { KIOSK_NODE_FLAGS, runOnSupportedNode } from '../../scripts/node-guard.js';

runOnSupportedNode(new URL('../main.ts', import.meta.url), 'kiosk', KIOSK_NODE_FLAGS);
