import { sessionConformance } from '../conformance/session.suite.js';

sessionConformance('dbm');
