import ssh2 from 'ssh2';

/**
 * A fresh ed25519 key pair that ssh2 (and OpenSSH) can read back. ssh2 1.17's
 * generateKeyPairSync('ed25519') strips leading zero bytes from the public key,
 * so about 1 key in 256 comes out 31 bytes long and is rejected as malformed.
 */
export function ed25519Pair(encryption?: { passphrase: string; cipher: string; rounds: number }): { private: string; public: string } {
  for (let i = 0; i < 100; i++) {
    const pair = encryption ? ssh2.utils.generateKeyPairSync('ed25519', encryption) : ssh2.utils.generateKeyPairSync('ed25519');
    const pub = ssh2.utils.parseKey(pair.public);
    const priv = ssh2.utils.parseKey(pair.private, encryption?.passphrase);
    if (pub && !(pub instanceof Error) && priv && !(priv instanceof Error)) return pair;
  }
  throw new Error('could not generate a readable ed25519 key pair');
}
