'use strict';

// API-key authentication: the key (cs_ + 64 hex) goes in "Authorization: Bearer"; the connection test
// asks Gymwire who the key is (GET /api/me) and labels the connection with the gym and the key's name.
module.exports = {
  type: 'custom',
  fields: [
    {
      key: 'base_url',
      label: 'Gymwire URL',
      required: true,
      type: 'string',
      helpText: 'The address of your Gymwire server, e.g. https://gymwire.example.com',
    },
    {
      key: 'api_key',
      label: 'API Key',
      required: true,
      type: 'password',
      helpText: 'Create one in Gymwire under Settings → Integrations → API Keys (Read/Write for actions).',
    },
  ],
  test: {
    url: '{{bundle.authData.base_url}}/api/me',
  },
  connectionLabel: '{{json.gym_name}} ({{json.key_name}})',
};
