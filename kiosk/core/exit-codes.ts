/** Process exit codes of portcullis-kiosk; docs/cli.md lists them. */
export const EXIT = {
  OK: 0, // done; for scan: drive approved
  FAILURE: 1, // the command failed (message says why)
  PARTIAL: 10, // scan: some files blocked, the rest approved
  REJECTED: 20, // scan: nothing may pass
  USAGE: 64, // bad command line (EX_USAGE)
  SETUP: 69, // the runtime is missing: run ./portcullis setup (EX_UNAVAILABLE)
  BUG: 70, // an unexpected error: a bug (EX_SOFTWARE)
} as const;
