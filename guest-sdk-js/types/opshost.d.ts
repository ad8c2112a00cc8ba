//! Generated from wit/ by `cargo xtask build-guests` (jco): do not edit.
/// <reference path="./interfaces/opshost-host-catalog.d.ts" />
/// <reference path="./interfaces/opshost-host-certs.d.ts" />
/// <reference path="./interfaces/opshost-host-cluster.d.ts" />
/// <reference path="./interfaces/opshost-host-components.d.ts" />
/// <reference path="./interfaces/opshost-host-config.d.ts" />
/// <reference path="./interfaces/opshost-host-control.d.ts" />
/// <reference path="./interfaces/opshost-host-filesystem.d.ts" />
/// <reference path="./interfaces/opshost-host-jobs.d.ts" />
/// <reference path="./interfaces/opshost-host-log.d.ts" />
/// <reference path="./interfaces/opshost-host-objectstore.d.ts" />
/// <reference path="./interfaces/opshost-host-packages.d.ts" />
/// <reference path="./interfaces/opshost-host-sources.d.ts" />
/// <reference path="./interfaces/opshost-host-storage.d.ts" />
/// <reference path="./interfaces/opshost-host-sysinfo.d.ts" />
/// <reference path="./interfaces/opshost-host-types.d.ts" />
/// <reference path="./interfaces/opshost-host-users.d.ts" />
declare module 'opshost:host/operation@0.1.0' {
  export type OpError = import('opshost:host/types@0.1.0').OpError;
  export type OperationInfo = import('opshost:host/types@0.1.0').OperationInfo;
  export type CallContext = import('opshost:host/types@0.1.0').CallContext;
  export type * as OpshostHostCatalog010 from 'opshost:host/catalog@0.1.0'; // import opshost:host/catalog@0.1.0
  export type * as OpshostHostCerts010 from 'opshost:host/certs@0.1.0'; // import opshost:host/certs@0.1.0
  export type * as OpshostHostCluster010 from 'opshost:host/cluster@0.1.0'; // import opshost:host/cluster@0.1.0
  export type * as OpshostHostComponents010 from 'opshost:host/components@0.1.0'; // import opshost:host/components@0.1.0
  export type * as OpshostHostConfig010 from 'opshost:host/config@0.1.0'; // import opshost:host/config@0.1.0
  export type * as OpshostHostControl010 from 'opshost:host/control@0.1.0'; // import opshost:host/control@0.1.0
  export type * as OpshostHostFilesystem010 from 'opshost:host/filesystem@0.1.0'; // import opshost:host/filesystem@0.1.0
  export type * as OpshostHostJobs010 from 'opshost:host/jobs@0.1.0'; // import opshost:host/jobs@0.1.0
  export type * as OpshostHostLog010 from 'opshost:host/log@0.1.0'; // import opshost:host/log@0.1.0
  export type * as OpshostHostObjectstore010 from 'opshost:host/objectstore@0.1.0'; // import opshost:host/objectstore@0.1.0
  export type * as OpshostHostPackages010 from 'opshost:host/packages@0.1.0'; // import opshost:host/packages@0.1.0
  export type * as OpshostHostSources010 from 'opshost:host/sources@0.1.0'; // import opshost:host/sources@0.1.0
  export type * as OpshostHostStorage010 from 'opshost:host/storage@0.1.0'; // import opshost:host/storage@0.1.0
  export type * as OpshostHostSysinfo010 from 'opshost:host/sysinfo@0.1.0'; // import opshost:host/sysinfo@0.1.0
  export type * as OpshostHostTypes010 from 'opshost:host/types@0.1.0'; // import opshost:host/types@0.1.0
  export type * as OpshostHostUsers010 from 'opshost:host/users@0.1.0'; // import opshost:host/users@0.1.0
  /**
  * Who this operation is; called once when the host loads the component.
  */
  export function describe(): OperationInfo;
  /**
  * Answers one request. `request` is the JSON body (with its `operation` key);
  * the `ok` value is the JSON response body.
  */
  export function handle(context: CallContext, request: string): string;
  export type Result<T, E> = { tag: 'ok', val: T } | { tag: 'err', val: E };
}
