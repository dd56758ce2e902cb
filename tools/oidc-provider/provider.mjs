// A real OpenID Connect provider (npm oidc-provider) on loopback, for the OIDC sign-in tests. It starts three providers
// with the same client (three issuers, three key sets: the second stands for "some other provider", the third offers no
// pushed authorization requests, as many providers do not) and prints one JSON line with their issuers. Sign-in is a
// one-field form: any email signs in as that account (an email that starts with "unverified-" has email_verified false);
// its Cancel button refuses the sign-in (access_denied). Consent is granted at once, as a first-party provider would.
// Usage: node provider.mjs   (stops when its standard input closes, so it never outlives the test process)
import http from 'node:http';
import Provider from 'oidc-provider';

const clientId = process.env.OIDC_CLIENT_ID ?? 'gymwire';
const clientSecret = process.env.OIDC_CLIENT_SECRET ?? 'gymwire-test-client-secret';
const apiAudience = process.env.OIDC_API_AUDIENCE ?? 'https://gymwire.test/api';
const scope = 'openid email profile';

async function start({ par = true } = {}) {
  const server = http.createServer();
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const issuer = `http://127.0.0.1:${server.address().port}`;
  const provider = new Provider(issuer, {
    clients: [{
      client_id: clientId,
      client_secret: clientSecret,
      // A native client may use any port on the loopback address (RFC 8252), so the test server's port needs no setup.
      application_type: 'native',
      redirect_uris: ['http://127.0.0.1/signin-oidc'],
      post_logout_redirect_uris: ['http://127.0.0.1/'],
      grant_types: ['authorization_code'],
      response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_post',
    }],
    claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: ['name'] },
    scopes: ['openid', 'email', 'profile'],
    features: {
      devInteractions: { enabled: false },
      // On by default in oidc-provider: its discovery document then has a pushed_authorization_request_endpoint.
      pushedAuthorizationRequests: { enabled: par },
      // An access token asked for the management API (resource=audience) is a JWT for it, as Clerk's session tokens
      // are; one asked for without a resource is the provider's own, for its userinfo endpoint (the browser sign-in).
      resourceIndicators: {
        enabled: true,
        defaultResource: () => undefined,
        useGrantedResource: () => true,
        getResourceServerInfo: () => ({ scope, audience: apiAudience, accessTokenFormat: 'jwt', accessTokenTTL: 3600 }),
      },
    },
    async findAccount(_ctx, id) {
      const email = Buffer.from(id, 'hex').toString('utf8');
      return {
        accountId: id,
        claims: () => ({ sub: id, email, email_verified: !email.startsWith('unverified-'), name: email.split('@')[0] }),
      };
    },
    // The email rides in the API's access token too, so a JWT alone identifies the owner (Clerk's tokens can carry it).
    async extraTokenClaims(_ctx, token) {
      if (token.kind !== 'AccessToken') return undefined;
      const email = Buffer.from(token.accountId, 'hex').toString('utf8');
      return { email, email_verified: !email.startsWith('unverified-') };
    },
    pkce: { required: () => false },
    cookies: { keys: ['gymwire-test-cookie-key'] },
    ttl: { Session: 3600, Interaction: 3600, Grant: 3600, AccessToken: 3600, IdToken: 3600, AuthorizationCode: 600 },
  });
  const callback = provider.callback();
  server.on('request', async (req, res) => {
    try {
      const match = /^\/interaction\/([^/?]+)/.exec(req.url);
      if (!match) return callback(req, res);
      const details = await provider.interactionDetails(req, res);
      if (details.prompt.name === 'consent') {
        // Consent is granted at once, for whatever the client asked (a first-party provider's behaviour).
        const { missingOIDCScope, missingOIDCClaims, missingResourceScopes } = details.prompt.details;
        const grant = details.grantId
          ? await provider.Grant.find(details.grantId)
          : new provider.Grant({ accountId: details.session.accountId, clientId: details.params.client_id });
        if (missingOIDCScope) grant.addOIDCScope(missingOIDCScope.join(' '));
        if (missingOIDCClaims) grant.addOIDCClaims(missingOIDCClaims);
        for (const [indicator, scopes] of Object.entries(missingResourceScopes ?? {})) grant.addResourceScope(indicator, scopes.join(' '));
        const grantId = await grant.save();
        await provider.interactionFinished(req, res, { consent: { grantId } }, { mergeWithLastSubmission: true });
        return;
      }
      if (req.method === 'GET') {
        res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8' });
        res.end(`<!doctype html><html lang="en"><head><title>Test provider sign-in</title></head><body><main>
<h1>Test provider</h1><form method="post" action="/interaction/${details.uid}">
<label for="email">Provider email</label> <input id="email" name="email" type="email" required>
<button type="submit">Continue</button>
<button type="submit" name="cancel" value="1" formnovalidate>Cancel</button></form></main></body></html>`);
        return;
      }
      const body = await new Promise((resolve) => {
        let data = '';
        req.on('data', (chunk) => { data += chunk; });
        req.on('end', () => resolve(new URLSearchParams(data)));
      });
      if (body.get('cancel')) {
        // The user refused at the provider: it sends the browser back to the client with error=access_denied.
        await provider.interactionFinished(req, res, { error: 'access_denied', error_description: 'End-User aborted interaction' }, { mergeWithLastSubmission: false });
        return;
      }
      const email = (body.get('email') ?? '').trim();
      await provider.interactionFinished(req, res, { login: { accountId: Buffer.from(email, 'utf8').toString('hex') } }, { mergeWithLastSubmission: false });
    } catch (err) {
      res.writeHead(400, { 'Content-Type': 'text/plain' });
      res.end(String(err));
    }
  });
  return issuer;
}

const issuers = [await start(), await start(), await start({ par: false })];
process.stdout.write(JSON.stringify({ issuer: issuers[0], other_issuer: issuers[1], no_par_issuer: issuers[2], client_id: clientId, client_secret: clientSecret, audience: apiAudience }) + '\n');
process.stdin.resume();
process.stdin.on('end', () => process.exit(0));
