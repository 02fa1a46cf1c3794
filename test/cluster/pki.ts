import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';

/**
 * The cluster's certificates, made with openssl the way kubeadm lays them out: one CA signs the
 * API server's serving certificate and every client certificate (the identity is the subject:
 * CN = user, O = group, which is all the API server's x509 authenticator reads), plus the
 * service-account signing key pair. EC P-256 keys: quick to make, accepted by every component.
 */
export interface ClientIdentity {
  /** File stem under pki/: <name>.crt, <name>.key. */
  name: string;
  cn: string;
  org?: string;
}

export interface Pki {
  dir: string;
  ca: string;
  caKey: string;
  saKey: string;
  saPub: string;
  cert(name: string): { crt: string; key: string };
}

export interface PkiOptions {
  dir: string;
  /** SANs of the API server's serving certificate. */
  apiserverIps: string[];
  apiserverDns: string[];
  clients: ClientIdentity[];
}

const DAYS = '3650';

async function openssl(args: string[], input?: string): Promise<void> {
  await execa('openssl', args, { ...(input !== undefined ? { input } : { stdin: 'ignore' }) });
}

async function ecKey(path: string): Promise<void> {
  await openssl(['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', path]);
}

/** Make whatever is missing (an existing file is kept, so `up` after `up` reuses the PKI). */
export async function ensurePki(opts: PkiOptions): Promise<Pki> {
  const dir = opts.dir;
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const p = (f: string) => join(dir, f);
  const pki: Pki = {
    dir,
    ca: p('ca.crt'),
    caKey: p('ca.key'),
    saKey: p('sa.key'),
    saPub: p('sa.pub'),
    cert: (name) => ({ crt: p(`${name}.crt`), key: p(`${name}.key`) }),
  };
  if (!existsSync(pki.ca)) {
    await ecKey(pki.caKey);
    await openssl(['req', '-x509', '-new', '-key', pki.caKey, '-subj', '/CN=kubernetes', '-days', DAYS, '-out', pki.ca,
      '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign,digitalSignature']);
  }
  if (!existsSync(pki.saPub)) {
    await openssl(['genpkey', '-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:2048', '-out', pki.saKey]);
    await openssl(['pkey', '-in', pki.saKey, '-pubout', '-out', pki.saPub]);
  }
  const san = [...opts.apiserverIps.map((ip) => `IP:${ip}`), ...opts.apiserverDns.map((d) => `DNS:${d}`)].join(',');
  await signed(pki, 'apiserver', '/CN=kube-apiserver', `subjectAltName=${san}\nextendedKeyUsage=serverAuth\nkeyUsage=critical,digitalSignature,keyEncipherment\n`);
  for (const c of opts.clients) {
    const subj = `${c.org ? `/O=${c.org}` : ''}/CN=${c.cn}`;
    await signed(pki, c.name, subj, 'extendedKeyUsage=clientAuth\nkeyUsage=critical,digitalSignature,keyEncipherment\n');
  }
  return pki;
}

async function signed(pki: Pki, name: string, subj: string, ext: string): Promise<void> {
  const { crt, key } = pki.cert(name);
  if (existsSync(crt)) return;
  await ecKey(key);
  const csr = `${crt}.csr`;
  const extFile = `${crt}.ext`;
  writeFileSync(extFile, ext);
  await openssl(['req', '-new', '-key', key, '-subj', subj, '-out', csr]);
  await openssl(['x509', '-req', '-in', csr, '-CA', pki.ca, '-CAkey', pki.caKey, '-CAcreateserial', '-days', DAYS, '-extfile', extFile, '-out', crt]);
}

/** A kubeconfig with the certificates embedded (so it can be copied anywhere). */
export function kubeconfig(pki: Pki, name: string, server: string): string {
  const b64 = (f: string) => readFileSync(f).toString('base64');
  const { crt, key } = pki.cert(name);
  return [
    'apiVersion: v1',
    'kind: Config',
    'clusters:',
    '- name: podnet',
    '  cluster:',
    `    server: ${server}`,
    `    certificate-authority-data: ${b64(pki.ca)}`,
    'users:',
    `- name: ${name}`,
    '  user:',
    `    client-certificate-data: ${b64(crt)}`,
    `    client-key-data: ${b64(key)}`,
    'contexts:',
    '- name: podnet',
    '  context:',
    '    cluster: podnet',
    `    user: ${name}`,
    'current-context: podnet',
    '',
  ].join('\n');
}
