/** Process exit codes of portcullis-agent; docs/agent.md "Exit codes" lists them. */
export const EXIT = {
  OK: 0, // done; verify/import: the drive is approved and every file on it passed
  FAILURE: 1, // the command failed (trust store, log, destination, broken log chain): the message names the code
  PARTIAL: 10, // verify/import: some files passed, some were refused or skipped
  REFUSED: 20, // verify/import: the drive was refused, or no file passed; manifest: the manifest was refused
  USAGE: 64, // bad command line (EX_USAGE)
  SETUP: 69, // the runtime is missing (bin shim): run ./portcullis setup (EX_UNAVAILABLE)
  BUG: 70, // an unexpected error: a bug (EX_SOFTWARE)
} as const;
