import { namespaceManagerConformance } from '../conformance/namespace-manager.suite.js';

namespaceManagerConformance('dbm');
