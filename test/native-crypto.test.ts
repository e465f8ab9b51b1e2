/**
 * ssh2's native crypto binding roughly doubles AES-GCM and ChaCha20 throughput; `npm ci`
 * builds it when python3, make and g++ are present (.ci/run installs them). Under CI a
 * missing binding is a failure, elsewhere a reported skip.
 */
import t from 'tap';
import { nativeCryptoLoaded } from '../src/tunnel/native-crypto.js';

t.test('native crypto – ssh2 loaded its native binding', async (t) => {
  const hint = 'ssh2 native crypto binding not built (needs python3 make g++ at npm ci time)';
  if (nativeCryptoLoaded()) t.pass('binding loaded');
  else if (process.env.CI === 'true') t.fail(hint);
  else t.pass('binding', { skip: hint });
});
