'use strict';

const baseUrl = (bundle) => String(bundle.authData.base_url || '').replace(/\/+$/, '');

// Every request carries the key; every error answer ({"error": "..."}) becomes a Zapier error with its message.
const addApiKey = (request, z, bundle) => {
  if (bundle.authData && bundle.authData.api_key) {
    request.headers = request.headers || {};
    request.headers.Authorization = `Bearer ${bundle.authData.api_key}`;
  }
  return request;
};

// What a 429 counted the request against, as the Zap's owner knows it (the limits are in docs/design.md).
const limitedBy = (response) => {
  const path = new URL(response.request.url).pathname;
  if (path.endsWith('/api/zapier/actions')) {
    return "this gym's actions (Create Lead, Send SMS, Log Attendance)";
  }
  if (path.endsWith('/api/zapier/triggers')) {
    return "this gym's trigger checks";
  }
  if (path.includes('/api/gym/webhooks')) {
    return "changes made with this connection's API key (turning on an instant Zap)";
  }
  return 'requests';
};

const throwForError = (response, z) => {
  if (response.status >= 400) {
    let message = `Gymwire answered ${response.status}`;
    try {
      const body = JSON.parse(response.content);
      if (body && body.error) {
        message = body.error;
      }
    } catch (e) {
      // not JSON: keep the status
    }
    if (response.status === 401) {
      // An API key cannot be refreshed (zapier-platform-core refreshes OAuth2 and session auth only): the run stops
      // and Zapier asks the user to reconnect with a valid key.
      throw new z.errors.ExpiredAuthError(message);
    }
    if (response.status === 429) {
      // Gymwire always sends Retry-After in seconds; a minute is a guess should a proxy drop it.
      const retryAfter = Number.parseInt(response.getHeader('retry-after'), 10);
      const delay = retryAfter > 0 ? retryAfter : 60;
      throw new z.errors.ThrottledError(
        `Gymwire's rate limit on ${limitedBy(response)} was reached; it allows more in ${delay} seconds, and Zapier tries again then.`,
        delay);
    }
    throw new z.errors.Error(message, 'GymwireError', response.status);
  }
  return response;
};

// A request made with zapier-platform-core's skipThrowForStatus reads the status itself (and calls throwForError
// for the statuses it does not expect).
const handleErrors = (response, z) => (response.skipThrowForStatus ? response : throwForError(response, z));

module.exports = { baseUrl, addApiKey, handleErrors, throwForError };
