/**
 * The kiosk's one usage error: a command line, option or filter that cannot
 * be taken as typed. Every command turns it into exit 64 with its message.
 */
import { PortcullisError } from '../../manifest/errors.ts';

export class UsageError extends PortcullisError<'USAGE'> {
  constructor(message: string) {
    super('USAGE', message);
  }
}
