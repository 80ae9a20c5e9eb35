/**
 * Telling the person at the HMI what happened to their drive. The service
 * runs as LocalSystem in session 0 and cannot show a window itself, so on
 * Windows it calls `msg.exe *`, which shows a message box in every
 * interactive session (docs/agent.md "Messages to the HMI user"). Elsewhere,
 * and when msg.exe is missing (Home editions), the message is a log line.
 * Text is escaped first: drive labels and file names are attacker-chosen.
 */
import { execFile } from 'node:child_process';
import { escapeForDisplay } from '../manifest/index.ts';
import { systemTool } from './drive-identity.ts';

export interface HmiMessage {
  /** info: a drive is being checked (the notice at the start); the others end a drive. */
  readonly level: 'info' | 'ok' | 'partial' | 'refused' | 'error';
  readonly title: string;
  readonly text: string;
}

export interface Notifier {
  notify(message: HmiMessage): Promise<void>;
}

export const MSG_MAX_CHARS = 255; // characters: msg.exe truncates longer messages anyway
const MSG_SECONDS = 120; // seconds the message box stays up

/** One plain line: escaped, no line breaks. */
export function messageLine(message: HmiMessage): string {
  return escapeForDisplay(`${message.title}: ${message.text}`.replace(/\s+/gu, ' '));
}

const NOTICE_SECONDS = 30; // seconds the start notice stays up (the summary replaces it as the news)

/** Arguments for msg.exe: all sessions, a timeout, the escaped and clipped text (no shell is involved). */
export function msgArguments(message: HmiMessage): string[] {
  let text = messageLine(message);
  if (text.length > MSG_MAX_CHARS) text = `${text.slice(0, MSG_MAX_CHARS - 3)}...`;
  return ['*', `/TIME:${message.level === 'info' ? NOTICE_SECONDS : MSG_SECONDS}`, text];
}

export function lineNotifier(write: (line: string) => void): Notifier {
  return {
    notify(message) {
      write(`[HMI ${message.level}] ${messageLine(message)}`);
      return Promise.resolve();
    },
  };
}

/** Windows: msg.exe * /TIME:120 "text"; falls back to `fallback` if msg.exe fails. */
export function windowsMsgNotifier(fallback: Notifier): Notifier {
  return {
    notify(message) {
      return new Promise((resolve) => {
        execFile(systemTool('msg.exe'), msgArguments(message), { windowsHide: true, timeout: 10_000 }, (error) => {
          if (error) void fallback.notify(message).then(resolve);
          else resolve();
        });
      });
    },
  };
}
