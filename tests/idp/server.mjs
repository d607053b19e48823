// A development OpenID provider for the tests and `cluster-manager demo`.
//
// The provider itself is the npm package oidc-provider (written and maintained outside this
// project); this script only configures it and adds a username/password login page that checks
// the users named in the configuration file.
//
//   node server.mjs CONFIG.json
//
// CONFIG.json (every key optional except users):
//   host, port            where to listen (port 0: any free port); default 127.0.0.1:0
//   public_host           host name in the issuer URL; default host
//   tls: {cert, key}      PEM files: serve HTTPS; without it plain HTTP (loopback only!)
//   users: {NAME: {password, name, email, groups: [...]}}
//   clients: [metadata]   pre-registered clients (oidc-provider client metadata, snake_case)
//   registration_token    enables dynamic client registration (RFC 7591) for holders of it
//   ttl: {AccessToken, IdToken, RefreshToken, Session, Grant, Interaction}  seconds
//   groups_claim          name of the groups claim; default "mcm-idp-groups"
//   clock_offset          seconds added to this provider's clock (tests: a provider whose clock
//                         is hours behind issues ID tokens that have already expired)
//
// Clients may carry "id_token_ttl" and "access_token_ttl" (seconds) to override the ttl above.
//
// When listening, one line of JSON goes to stdout: {"issuer": "..."}.

import { generateKeyPairSync, randomBytes, timingSafeEqual, createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';

import Provider from 'oidc-provider';

const config = JSON.parse(readFileSync(process.argv[2], 'utf8'));
if (config.clock_offset) {
  const realNow = Date.now;
  Date.now = () => realNow() + config.clock_offset * 1000;
}
const users = config.users ?? {};
const groupsClaim = config.groups_claim ?? 'mcm-idp-groups';
const ttl = {
  AccessToken: 3600, IdToken: 3600, RefreshToken: 14 * 86400, Session: 86400,
  Grant: 14 * 86400, Interaction: 3600, ...config.ttl,
};

function escapeHtml(value) {
  return String(value).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function digest(value) {
  return createHash('sha256').update(String(value)).digest();
}

function passwordMatches(username, password) {
  const user = Object.hasOwn(users, username) ? users[username] : undefined;
  const expected = digest(user ? user.password : randomBytes(16).toString('hex'));
  return timingSafeEqual(expected, digest(password)) && user !== undefined;
}

function page(title, body) {
  return `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>${escapeHtml(title)}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>body{font-family:sans-serif;max-width:22rem;margin:3rem auto;padding:0 1rem}
label,input,button{display:block;width:100%;margin:.4rem 0;font-size:1rem;box-sizing:border-box}
input,button{padding:.5rem}.error{color:#b00020}</style></head>
<body><h1>${escapeHtml(title)}</h1>${body}</body></html>`;
}

function loginPage(uid, error, username = '') {
  const message = error ? `<p class="error" role="alert">${escapeHtml(error)}</p>` : '';
  return page('Sign in', `${message}
<p>Development identity provider for MicroCloud Cluster Manager.</p>
<form method="post" action="/interaction/${escapeHtml(uid)}/login" autocomplete="off">
<label for="username">Username</label>
<input id="username" name="username" required value="${escapeHtml(username)}" autofocus>
<label for="password">Password</label>
<input id="password" name="password" type="password" required>
<button type="submit">Sign in</button>
</form>`);
}

function accountClaims(sub) {
  const user = users[sub];
  return {
    sub,
    name: user.name ?? sub,
    preferred_username: sub,
    email: user.email ?? `${sub}@example.invalid`,
    email_verified: true,
    [groupsClaim]: user.groups ?? [],
  };
}

const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const signingKey = { ...privateKey.export({ format: 'jwk' }), kid: randomBytes(8).toString('hex'), use: 'sig', alg: 'RS256' };

function clientTtl(name, fallback) {
  return (_ctx, _token, client) => client?.[name] ?? fallback;
}

function providerConfiguration() {
  return {
    clients: config.clients ?? [],
    jwks: { keys: [signingKey] },
    cookies: { keys: [randomBytes(32).toString('hex')] },
    scopes: ['openid', 'offline_access', 'email', 'profile'],
    claims: {
      openid: ['sub', groupsClaim],
      email: ['email', 'email_verified'],
      profile: ['name', 'preferred_username'],
    },
    // Scope-derived claims (the groups too) go into the ID token, as Keycloak and Auth0 do.
    conformIdTokenClaims: false,
    extraClientMetadata: { properties: ['id_token_ttl', 'access_token_ttl'] },
    async findAccount(_ctx, sub) {
      if (!Object.hasOwn(users, sub)) return undefined;
      return { accountId: sub, claims: async () => accountClaims(sub) };
    },
    // Refresh tokens for every client allowed the refresh_token grant (without the
    // prompt=consent that OIDC Core asks for offline_access), as Keycloak and Auth0 do.
    issueRefreshToken: async (_ctx, client) => client.grantTypeAllowed('refresh_token'),
    pkce: { required: () => true },
    features: {
      devInteractions: { enabled: false },
      revocation: { enabled: true },
      registration: config.registration_token
        ? { enabled: true, initialAccessToken: config.registration_token }
        : { enabled: false },
      rpInitiatedLogout: {
        enabled: true,
        logoutSource: async (ctx, form) => {
          ctx.body = page('Sign out', `${form}
<p>Sign out of the development identity provider?</p>
<button type="submit" form="op.logoutForm" name="logout" value="yes" autofocus>Sign out</button>`);
        },
        postLogoutSuccessSource: async (ctx) => {
          ctx.body = page('Signed out', '<p>You are signed out.</p>');
        },
      },
    },
    ttl: {
      AccessToken: clientTtl('access_token_ttl', ttl.AccessToken),
      IdToken: clientTtl('id_token_ttl', ttl.IdToken),
      RefreshToken: ttl.RefreshToken,
      Session: ttl.Session,
      Grant: ttl.Grant,
      Interaction: ttl.Interaction,
    },
    renderError: async (ctx, out) => {
      ctx.type = 'html';
      ctx.body = page('Sign-in error', Object.entries(out)
        .map(([key, value]) => `<p><strong>${escapeHtml(key)}</strong>: ${escapeHtml(value)}</p>`)
        .join(''));
    },
  };
}

async function readForm(req, limit = 16 * 1024) {
  let body = '';
  for await (const chunk of req) {
    body += chunk;
    if (body.length > limit) throw new Error('form too large');
  }
  return new URLSearchParams(body);
}

function send(res, status, html) {
  res.writeHead(status, {
    'content-type': 'text/html; charset=utf-8',
    'cache-control': 'no-store',
  });
  res.end(html);
}

async function interaction(provider, req, res, uid, action) {
  const details = await provider.interactionDetails(req, res);
  if (details.uid !== uid) {
    send(res, 400, page('Sign-in error', '<p>This sign-in page has expired.</p>'));
    return;
  }
  const { prompt, params, session } = details;
  if (prompt.name === 'login') {
    if (req.method === 'GET' && action === '') {
      send(res, 200, loginPage(uid));
      return;
    }
    if (req.method === 'POST' && action === '/login') {
      const form = await readForm(req);
      const username = form.get('username') ?? '';
      if (!passwordMatches(username, form.get('password') ?? '')) {
        send(res, 401, loginPage(uid, 'Wrong username or password.', username));
        return;
      }
      await provider.interactionFinished(req, res, { login: { accountId: username } },
        { mergeWithLastSubmission: false });
      return;
    }
  }
  if (prompt.name === 'consent' && req.method === 'GET' && action === '') {
    // The clients of this provider are first-party: consent is granted without asking.
    const grant = details.grantId
      ? await provider.Grant.find(details.grantId)
      : new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
    if (prompt.details.missingOIDCScope) grant.addOIDCScope(prompt.details.missingOIDCScope.join(' '));
    if (prompt.details.missingOIDCClaims) grant.addOIDCClaims(prompt.details.missingOIDCClaims);
    const grantId = await grant.save();
    await provider.interactionFinished(req, res, { consent: { grantId } },
      { mergeWithLastSubmission: true });
    return;
  }
  send(res, 400, page('Sign-in error', '<p>Unexpected sign-in step.</p>'));
}

let handler = (_req, res) => { res.writeHead(503); res.end(); };
const serve = (req, res) => handler(req, res);
const server = config.tls
  ? https.createServer({ cert: readFileSync(config.tls.cert), key: readFileSync(config.tls.key) }, serve)
  : http.createServer(serve);

server.listen(config.port ?? 0, config.host ?? '127.0.0.1', () => {
  const { port } = server.address();
  const host = config.public_host ?? config.host ?? '127.0.0.1';
  const issuer = `${config.tls ? 'https' : 'http'}://${host}:${port}`;
  const provider = new Provider(issuer, providerConfiguration());
  provider.on('server_error', (_ctx, error) => console.error('server_error', error));
  const callback = provider.callback();
  handler = (req, res) => {
    const match = /^\/interaction\/([\w-]{1,64})(\/login)?$/.exec(req.url.split('?')[0]);
    if (!match) {
      callback(req, res);
      return;
    }
    interaction(provider, req, res, match[1], match[2] ?? '').catch((error) => {
      if (!res.headersSent) {
        send(res, 400, page('Sign-in error', `<p>${escapeHtml(error.error_description ?? error.message)}</p>`));
      }
    });
  };
  process.stdout.write(`${JSON.stringify({ issuer })}\n`);
});

for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => server.close(() => process.exit(0)));
}
