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
  beforeRequest: [addApiKey],
  afterResponse: [handleErrors],
  triggers,
  creates,
};
