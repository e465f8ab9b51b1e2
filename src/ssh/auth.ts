import type { AnyAuthMethod, AuthHandlerMiddleware, AuthenticationType, BaseAgent, ParsedKey } from 'ssh2';
import type { AlgorithmCatalogue } from '../config/algorithms.js';
import {
  certificateProblem, certificateTypeFor, describeCertificate, isCertificateType, parseCertificate, readCertificateFile, type Certificate,
} from './certificate.js';
import { quoted } from '../errors.js';
import type { Identity } from './identities.js';
import type { Prompter } from './prompter.js';

export interface AuthPlan {
  username: string;
  agentSocket: string | undefined;
  /** IdentitiesOnly: of the agent's keys, only those an identity file names (a public key file) are offered. */
  identitiesOnly: boolean;
  identities: Identity[];
  /** Given identity files that did not exist when the keys were read: named if authentication fails. */
  missingIdentityFiles?: string[];
  /** Password and keyboard-interactive are offered only when someone can answer. */
  prompter: Prompter | undefined;
  /** The server host, for the password prompt. */
  host: string;
  /** CertificateFile: read at every connect, so a renewed certificate is used without a restart. */
  certificateFiles: string[];
  /** PubkeyAcceptedAlgorithms: the key and certificate types offered; undefined offers every type. */
  pubkeyAlgorithms?: string[];
}

/** What auth needs from ssh2 to offer certificates and agent keys; the adapter (the one ssh2 importer) makes them. */
export interface KeyMaker {
  /** A private key presented as its certificate: ssh2 sends the certificate and signs with the key. */
  certified(key: ParsedKey, cert: Certificate): ParsedKey;
  /**
   * ssh2's agent over ssh-agent at `socket`, offering each identity `screen` does not object to
   * (certificates and security keys too), plus `certificates` whose key the agent holds.
   */
  agent(socket: string, certificates: Certificate[], screen: (type: string, blob: Buffer) => string | undefined, skipped: (identity: string, why: string) => void): BaseAgent;
}

/** What was offered, for an AuthError that says what to try next. */
export interface AuthAttempts {
  tried: string[];
  /** Certificates not offered, or offered for another principal: named in the error if authentication fails. */
  notes: string[];
}

/**
 * ssh2's authHandler: agent keys, then identity files, then password and
 * keyboard-interactive on a TTY (OpenSSH's order), skipping methods the
 * server no longer lists. A password typed once is reused for reconnects.
 */
/** Server text shown on our terminal: control characters (escape sequences) removed, as OpenSSH does. */
function printable(text: string): string {
  // eslint-disable-next-line no-control-regex
  return text.replace(/[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/g, '');
}

interface Step {
  /** The method name the server lists for this step. */
  method: AuthenticationType;
  label: string;
  make(): AnyAuthMethod | Promise<AnyAuthMethod>;
}

export function authHandler(plan: AuthPlan, attempts: AuthAttempts, cache: { password?: string }, keys: KeyMaker): AuthHandlerMiddleware {
  const { username } = plan;
  const steps: Step[] = [];
  const screen = (type: string, blob: Buffer) => keyProblem(plan, type, blob, attempts, Date.now());
  const certificates = readCertificates(plan, attempts, screen);
  for (const file of plan.missingIdentityFiles ?? []) attempts.notes.push(`Identity file ${file} does not exist.`);
  const named = plan.identities.filter((id) => id.agentKey).map((id) => id.key.getPublicSSH());
  if (plan.agentSocket && (!plan.identitiesOnly || named.length > 0)) {
    const only = (type: string, blob: Buffer) =>
      plan.identitiesOnly && !named.some((b) => b.equals(blob)) ? 'IdentitiesOnly, and no identity file names it' : screen(type, blob);
    const agent = keys.agent(plan.agentSocket, certificates.map((c) => c.cert), only, (identity, why) => attempts.notes.push(`ssh-agent key ${quoted(identity)} was not offered: ${why}.`));
    steps.push({ method: 'publickey', label: 'agent', make: () => ({ type: 'agent', username, agent }) });
  }
  for (const id of plan.identities) {
    if (id.agentKey) continue; // signed by the agent, above
    // OpenSSH offers an identity's certificate before the key itself.
    for (const { file, cert } of certificates.filter((c) => c.cert.key.equals(id.key.getPublicSSH()))) {
      steps.push({ method: 'publickey', label: `certificate ${file}`, make: () => ({ type: 'publickey', username, key: keys.certified(id.key, cert) }) });
    }
    if (screen(id.key.type, id.key.getPublicSSH()) !== undefined) continue;
    steps.push({ method: 'publickey', label: `publickey ${id.file}`, make: () => ({ type: 'publickey', username, key: id.key }) });
  }
  const prompter = plan.prompter;
  if (prompter) {
    steps.push({
      method: 'password',
      label: 'password',
      make: async () => {
        cache.password ??= await prompter.ask(`${username}@${plan.host}'s password: `, false);
        return { type: 'password', username, password: cache.password };
      },
    });
    steps.push({
      method: 'keyboard-interactive',
      label: 'keyboard-interactive',
      make: () => ({
        type: 'keyboard-interactive',
        username,
        prompt: (_name, instructions, _lang, prompts, finish) => {
          void (async () => {
            if (instructions) prompter.say?.(printable(instructions));
            const answers: string[] = [];
            for (const p of prompts) answers.push(await prompter.ask(printable(p.prompt), p.echo ?? false));
            finish(answers);
          })().catch(() => finish([]));
        },
      }),
    });
  }
  let next = 0;
  let methodsKnown = false;
  // ssh2 takes `false` for "no more methods"; its typings omit it.
  return (methodsLeft, _partial, done) => {
    const stop = done as unknown as (m: false) => void;
    methodsKnown ||= methodsLeft !== null;
    void (async () => {
      while (next < steps.length) {
        const step = steps[next]!;
        // Before asking a person anything, learn which methods the server takes (as ssh does with "none").
        if (!methodsKnown && (step.method === 'password' || step.method === 'keyboard-interactive')) {
          methodsKnown = true;
          return done({ type: 'none', username });
        }
        next++;
        if (methodsLeft && !methodsLeft.includes(step.method)) continue;
        attempts.tried.push(step.label);
        return done(await step.make());
      }
      stop(false);
    })().catch(() => stop(false));
  };
}

/** PubkeyAcceptedAlgorithms' default (OpenSSH's, certificates first) and what else it may name. */
const PUBKEY_PLAIN = [
  'ssh-ed25519', 'ecdsa-sha2-nistp256', 'ecdsa-sha2-nistp384', 'ecdsa-sha2-nistp521',
  'sk-ssh-ed25519@openssh.com', 'sk-ecdsa-sha2-nistp256@openssh.com', 'rsa-sha2-512', 'rsa-sha2-256',
];
export const PUBKEY_ALGORITHMS: AlgorithmCatalogue = {
  default: [...PUBKEY_PLAIN.map(certificateTypeFor), ...PUBKEY_PLAIN],
  supported: [...PUBKEY_PLAIN.map(certificateTypeFor), ...PUBKEY_PLAIN, 'ssh-rsa-cert-v01@openssh.com', 'ssh-rsa'],
};

/** PubkeyAcceptedAlgorithms allows a key of `type`: an RSA key or certificate under any of its signature algorithms. */
function accepted(list: string[] | undefined, type: string): boolean {
  if (list === undefined) return true;
  const cert = isCertificateType(type) ? '-cert-v01@openssh.com' : '';
  if (type === `ssh-rsa${cert}`) return ['rsa-sha2-512', 'rsa-sha2-256', 'ssh-rsa'].some((a) => list.includes(`${a}${cert}`));
  return list.includes(type);
}

/**
 * Why a key or certificate is not offered: a type PubkeyAcceptedAlgorithms leaves out, or a
 * certificate outside its validity interval (sshd would refuse it anyway). A certificate for
 * other principals is still offered, since the server may map them (AuthorizedPrincipalsFile,
 * `principals=` in authorized_keys), but it is noted for the error if authentication fails.
 */
function keyProblem(plan: AuthPlan, type: string, blob: Buffer, attempts: AuthAttempts, nowMs: number): string | undefined {
  if (!accepted(plan.pubkeyAlgorithms, type)) return `${type} is not in PubkeyAcceptedAlgorithms`;
  if (!isCertificateType(type)) return undefined;
  const cert = parseCertificate(blob);
  const problem = certificateProblem(cert, 'user', plan.username, nowMs);
  if (problem === undefined) return undefined;
  const text = `${problem.text}; it is a ${describeCertificate(cert)}`;
  if (problem.reason !== 'principal') return text;
  attempts.notes.push(`Certificate ${quoted(cert.keyId)} was offered although ${text}.`);
  return undefined;
}

/**
 * CertificateFile and each identity's `<identity>-cert.pub`, read now: a certificate renewed on
 * disk is used at the next connect. One that cannot be used is noted, not offered.
 */
function readCertificates(plan: AuthPlan, attempts: AuthAttempts, screen: (type: string, blob: Buffer) => string | undefined): { file: string; cert: Certificate }[] {
  const out: { file: string; cert: Certificate }[] = [];
  const files = new Set([...plan.certificateFiles, ...plan.identities.map((id) => `${id.file}-cert.pub`)]);
  for (const file of files) {
    let cert: Certificate | undefined;
    try {
      cert = readCertificateFile(file);
    } catch (err) {
      attempts.notes.push(`${(err as Error).message}.`);
      continue;
    }
    if (cert === undefined) {
      if (plan.certificateFiles.includes(file)) attempts.notes.push(`CertificateFile ${file} does not exist.`);
      continue;
    }
    const problem = screen(cert.type, cert.blob);
    if (problem) attempts.notes.push(`Certificate ${file} was not offered: ${problem}.`);
    else out.push({ file, cert });
  }
  return out;
}
