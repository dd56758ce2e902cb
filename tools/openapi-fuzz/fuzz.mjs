// R5 (docs/reliability.md): a fuzzing pass over the served OpenAPI document with an npm tool.
// Portman turns the document into a Postman collection: one request per operation with a body and parameters
// generated from the schemas, plus a "Fuzz" variation per operation that breaks the schema's constraints
// (required fields removed; numbers past minimum/maximum; strings past minLength/maxLength). Newman sends them
// all to the live server, and a collection-level test fails any answer of 500 or more.
//
// Usage: node fuzz.mjs BASE_URL BEARER_TOKEN      (everything stays on the given base URL)
// Fails too when more than a tenth of the answers are 401 (the token did not take).
// Prints one closing line "openapi-fuzz: N requests over N operations, N 5xx" and exits non-zero on any 5xx.
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const [baseUrl, token] = process.argv.slice(2);
if (!baseUrl || !token) {
  console.error('usage: node fuzz.mjs BASE_URL BEARER_TOKEN');
  process.exit(2);
}
const here = dirname(fileURLToPath(import.meta.url));
const work = mkdtempSync(join(tmpdir(), 'gymwire-fuzz-'));

try {
  const response = await fetch(new URL('/openapi.json', baseUrl), { signal: AbortSignal.timeout(30_000) });
  const spec = await response.json();
  // Logging out would end the session the rest of the run uses; R5's C# tests cover it.
  delete spec.paths['/api/auth/logout'];
  delete spec.paths['/api/auth/logout-everywhere'];
  const operations = Object.values(spec.paths).reduce((n, item) => n + Object.keys(item).filter(m => ['get', 'post', 'put', 'patch', 'delete'].includes(m)).length, 0);
  writeFileSync(join(work, 'openapi.json'), JSON.stringify(spec));

  const fuzzOptions = {
    requiredFields: { enabled: true },
    minimumNumberFields: { enabled: true },
    maximumNumberFields: { enabled: true },
    minLengthFields: { enabled: true },
    maxLengthFields: { enabled: true },
  };
  writeFileSync(join(work, 'portman-config.json'), JSON.stringify({
    version: 1.0,
    tests: {
      contractTests: [],
      variationTests: [{
        openApiOperation: '*::/*',
        variations: [{
          name: 'Fuzz',
          fuzzing: [{ requestBody: [fuzzOptions], requestQueryParams: [fuzzOptions], requestHeaders: [fuzzOptions] }],
          tests: { contractTests: [] },
        }],
      }],
    },
    globals: {
      // The generated requests carry their own bearer auth with the {{bearerToken}} variable.
      collectionVariables: { bearerToken: token },
      securityOverwrites: { bearer: { token } },
      collectionTestScripts: [
        "pm.test('no 5xx', function () { pm.expect(pm.response.code, pm.request.method + ' ' + pm.request.url.toString()).to.be.below(500); });",
      ],
    },
  }));
  writeFileSync(join(work, 'newman-options.json'), JSON.stringify({
    reporters: ['json'],
    reporter: { json: { export: join(work, 'newman.json') } },
    timeoutRequest: 30_000,
    timeout: 600_000,
  }));

  const portman = join(here, 'node_modules', '@apideck', 'portman', 'bin', 'portman');
  const code = await new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [portman, '-l', 'openapi.json', '-b', baseUrl.replace(/\/$/, ''), '-c', 'portman-config.json',
      '-o', 'collection.json', '--runNewman', '--newmanOptionsFile', 'newman-options.json'], { cwd: work, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', d => { output += d; });
    child.stderr.on('data', d => { output += d; });
    const timer = setTimeout(() => child.kill('SIGKILL'), 900_000);
    child.on('error', reject);
    child.on('close', c => { clearTimeout(timer); if (c !== 0) { console.error(output); } resolve(c); });
  });

  const run = JSON.parse(readFileSync(join(work, 'newman.json'), 'utf8')).run;
  const answered = run.executions.filter(e => e.response);
  const serverErrors = answered.filter(e => e.response.code >= 500);
  const unanswered = run.executions.filter(e => !e.response);
  for (const e of serverErrors) {
    console.log(`5xx: ${e.item.name}: ${e.request.method} ${typeof e.request.url === 'string' ? e.request.url : JSON.stringify(e.request.url)} -> ${e.response.code}`);
  }
  for (const e of unanswered) {
    console.log(`no answer: ${e.item.name}: ${e.requestError?.message ?? 'unknown error'}`);
  }
  const statuses = {};
  for (const e of answered) {
    statuses[e.response.code] = (statuses[e.response.code] ?? 0) + 1;
  }
  console.log(`statuses: ${JSON.stringify(statuses)}`);
  // An expired or wrong token would turn the pass into 401s that never reach the handlers.
  const refused = statuses[401] ?? 0;
  if (refused > answered.length / 10) {
    console.log(`authentication did not take: ${refused} of ${answered.length} answers are 401`);
  }
  console.log(`openapi-fuzz: ${run.executions.length} requests over ${operations} operations, ${serverErrors.length} 5xx, ${unanswered.length} unanswered`);
  process.exitCode = (code === 0 && serverErrors.length === 0 && unanswered.length === 0 && answered.length >= operations && refused <= answered.length / 10) ? 0 : 1;
} finally {
  if (!process.env.GYMWIRE_FUZZ_KEEP) { rmSync(work, { recursive: true, force: true }); } else { console.log(work); }
}
