#!/usr/bin/env node
// Starts the update publisher on Node.js 24 or later; an older Node re-runs it
// with the project's pinned Node (installed by ./portcullis setup).
import { runOnSupportedNode } from '../../scripts/node-guard.js';

runOnSupportedNode(new URL('../main.ts', import.meta.url), 'update');
