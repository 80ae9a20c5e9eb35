/**
 * A site PKI for tests, made with openssl: a CA, the central review's
 * receiver certificate (localhost, 127.0.0.1), client certificates whose CN
 * is a source's name, and a second, foreign CA with a client certificate of
 * its own (what an attacker without the site CA's key could make).
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

export interface Pem {
  readonly cert: Buffer;
  readonly key: Buffer;
  readonly certPath: string;
  readonly keyPath: string;
}

export interface SitePki {
  readonly ca: Buffer;
  readonly caPath: string;
  readonly server: Pem;
  client(name: string): Pem;
  /** A client certificate for `name` from a CA the site does not trust. */
  foreign(name: string): Pem;
}

const ssl = (args: string[], cwd: string): void => void execFileSync('openssl', args, { cwd, stdio: 'ignore' });

function makeCa(dir: string, name: string): void {
  ssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '2', '-subj', `/CN=${name}`,
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign',
    '-keyout', `${name}.key`, '-out', `${name}.pem`], dir);
}

function issue(dir: string, ca: string, cn: string, file: string, extensions: string): Pem {
  ssl(['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-subj', `/CN=${cn}`, '-keyout', `${file}.key`, '-out', `${file}.csr`], dir);
  execFileSync('sh', ['-c', `printf '%s\\n' "${extensions}" > ${file}.ext`], { cwd: dir });
  ssl(['x509', '-req', '-in', `${file}.csr`, '-CA', `${ca}.pem`, '-CAkey', `${ca}.key`, '-CAcreateserial', '-days', '2', '-extfile', `${file}.ext`, '-out', `${file}.pem`], dir);
  return { cert: readFileSync(join(dir, `${file}.pem`)), key: readFileSync(join(dir, `${file}.key`)), certPath: join(dir, `${file}.pem`), keyPath: join(dir, `${file}.key`) };
}

export function makeSitePki(dir: string): SitePki {
  mkdirSync(dir, { recursive: true });
  makeCa(dir, 'site-ca');
  makeCa(dir, 'foreign-ca');
  const server = issue(dir, 'site-ca', 'localhost', 'receiver', 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth');
  return {
    ca: readFileSync(join(dir, 'site-ca.pem')),
    caPath: join(dir, 'site-ca.pem'),
    server,
    client: (name) => issue(dir, 'site-ca', name, `client-${name}`, 'extendedKeyUsage=clientAuth'),
    foreign: (name) => issue(dir, 'foreign-ca', name, `foreign-${name}`, 'extendedKeyUsage=clientAuth'),
  };
}
