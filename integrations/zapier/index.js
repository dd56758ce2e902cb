'use strict';

const authentication = require('./authentication');
const { addApiKey, handleErrors } = require('./lib');
const polling = require('./triggers/polling');
const instant = require('./triggers/instant');
const creates = require('./creates/actions');

const triggers = {};
for (const t of [...Object.values(polling), ...Object.values(instant)]) {
  if (t && t.key) {
    triggers[t.key] = t;
  }
}

module.exports = {
  version: require('./package.json').version,
  platformVersion: require('zapier-platform-core').version,
  authentication,
  // Left to itself, zapier-platform-core answers a 429 with its own ThrottledError ("The server returned 429") before
  // afterResponse runs; false lets handleErrors name Gymwire's limit instead (the schema's description of this flag
  // has it the wrong way round: the core's prepare-request and throw-for-throttling read false as "afterResponse sees 429").
  flags: { throwForThrottlingEarly: false },
  beforeRequest: [addApiKey],
  afterResponse: [handleErrors],
  triggers,
  creates,
};
