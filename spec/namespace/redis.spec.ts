import { it } from 'node:test';
import { namespaceManagerConformance } from '../conformance/namespace-manager.suite.js';
import { redisSkipReason } from '../fixtures/redis-server.js';

const skip = redisSkipReason();
if (skip) it('NamespaceManager conformance: redis', { skip }, () => {});
else namespaceManagerConformance('redis');
