import fs from 'node:fs';
import path from 'node:path';
import { SETTING_NAMES, envName, fileKey, fileSettings, helpLine, settingOf, type Setting, type SettingName } from './setting-table.js';

/**
 * What is made from the setting table and committed: the JSON Schema of the config file and the
 * README's flag reference. `npm run generate` writes them; a test fails when either is stale.
 */

export const SCHEMA_FILE = 'schema/tunnels.schema.json';
const FLAGS_START = '<!-- flags:start (npm run generate) -->';
const FLAGS_END = '<!-- flags:end -->';

const scalar = { type: ['string', 'number'] };

function shapeSchema(s: Setting): Record<string, unknown> {
  switch (s.shape) {
    case 'list':
      return { anyOf: [scalar, { type: 'array', items: scalar }] };
    case 'options':
      return {
        anyOf: [
          { type: 'object', additionalProperties: { type: ['string', 'number', 'boolean'] } },
          { type: 'array', items: { type: 'string' } },
          { type: 'string' },
        ],
      };
    case 'switch':
      return { type: ['boolean', 'string'] }; // `true`, or yes/no as OpenSSH writes them
    default:
      return s.choices ? { enum: [...s.choices] } : scalar;
  }
}

function properties(names: SettingName[]): Record<string, unknown> {
  return Object.fromEntries(
    names.map((name) => {
      const s = settingOf(name);
      return [fileKey(name), { description: helpLine(name), ...(s.default === undefined ? {} : { default: s.default }), ...shapeSchema(s) }];
    }),
  );
}

/** The JSON Schema (draft 2020-12) of a --config file, for editors to complete and check it. */
export function configSchema(): Record<string, unknown> {
  return {
    $schema: 'https://json-schema.org/draft/2020-12/schema',
    title: 'sshkeep --config file',
    description: 'Process settings and one or more tunnels. Top-level tunnel settings are every tunnel\'s default; flags and SSHKEEP_* variables beat the file.',
    type: 'object',
    additionalProperties: false,
    properties: {
      ...properties(fileSettings('top')),
      tunnels: { description: 'The tunnels to keep, each to one destination with its forwards.', type: 'array', items: { $ref: '#/$defs/tunnel' } },
    },
    $defs: {
      tunnel: {
        type: 'object',
        additionalProperties: false,
        required: ['destination'],
        anyOf: [{ required: ['local'] }, { required: ['dynamic'] }, { required: ['remote'] }],
        properties: properties(fileSettings('tunnel')),
      },
    },
  };
}

const code = (text: string) => `\`${text}\``;
const cell = (text: string) => text.replace(/\|/g, '\\|');

/** The README's flag reference: one row per flag, with its variable and config-file key. */
function flagReference(): string {
  const rows = SETTING_NAMES.filter((n) => settingOf(n).flags).map((name) => {
    const s = settingOf(name);
    const env = envName(name);
    const file = s.file === undefined ? '' : `${code(fileKey(name))}${s.file === 'both' ? ' (top, tunnel)' : s.file === 'top' ? ' (top)' : ''}`;
    const choices = s.choices && `one of ${s.choices.map(code).join(', ')}`;
    const meaning = [helpLine(name), choices, s.more].filter(Boolean).join('; ');
    return `| ${cell(code(s.flags!))} | ${env ? code(env) : ''} | ${file} | ${cell(meaning)} |`;
  });
  return ['| flag | environment | config file | meaning |', '|---|---|---|---|', ...rows].join('\n');
}

/** README with its flag reference replaced by the one made from the table. */
export function withFlagReference(readme: string): string {
  const start = readme.indexOf(FLAGS_START);
  const end = readme.indexOf(FLAGS_END);
  if (start < 0 || end < start) throw new Error(`README: the markers ${FLAGS_START} … ${FLAGS_END} are missing`);
  return `${readme.slice(0, start + FLAGS_START.length)}\n${flagReference()}\n${readme.slice(end)}`;
}

export const schemaText = (): string => `${JSON.stringify(configSchema(), null, 2)}\n`;

/** `npm run generate`: writes the schema and README's flag reference under `root`. */
export function writeGenerated(root: string): void {
  fs.mkdirSync(path.join(root, path.dirname(SCHEMA_FILE)), { recursive: true });
  fs.writeFileSync(path.join(root, SCHEMA_FILE), schemaText());
  const readme = path.join(root, 'README.md');
  fs.writeFileSync(readme, withFlagReference(fs.readFileSync(readme, 'utf8')));
}
