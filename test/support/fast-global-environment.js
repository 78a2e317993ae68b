/**
 * jest's node environment, with the test file's global object made an ordinary object.
 *
 * jest runs each test file, and every module it imports (the whole server: Koa, oidc-provider,
 * Mongoose, pug, qrcode …), in a vm context of its own. A context made the usual way answers every
 * global lookup (`Math`, `Object`, `Buffer`, `JSON`, …) through an interceptor, and jest 30 puts a
 * Proxy behind it as well: measured here, 0.75 µs per lookup against 0.007 µs outside (100 times
 * slower). Code with hot loops suffers most: rendering one TOTP enrolment QR code as a PNG took
 * about 1.5 s inside jest against 10 ms in plain Node, which alone made a third of the suite's time.
 *
 * Node 22.8 can make a context whose global object is an ordinary object
 * (`vm.constants.DONT_CONTEXTIFY`), with lookups at native speed. The parent builds its context
 * with `vm.createContext(proxy)`, so that one call is pointed at such a context while the parent's
 * constructor runs; everything else (the globals jest installs, fake timers, teardown) is the
 * parent's own. What is given up: jest's Proxy, which only records globals a test file sets so that
 * teardown can delete them (the context is dropped after the file anyway).
 *
 * NOTE: needs Node ≥ 22.8 (`npm test` runs the Node 22 of devDependencies); on an older Node the
 * parent's context is kept, and the suite is only slower.
 */
import vm from 'node:vm';

import { TestEnvironment } from 'jest-environment-node';

export default class FastGlobalEnvironment extends TestEnvironment {
  constructor(config, context) {
    const createContext = vm.createContext;
    const plainGlobal = vm.constants?.DONT_CONTEXTIFY;
    if (plainGlobal !== undefined) vm.createContext = () => createContext(plainGlobal);
    try {
      super(config, context);
    } finally {
      vm.createContext = createContext;
    }
  }
}
