/**
 * The kernel layer: the only code that touches koffi or fds. Everything
 * above works with these classes and plain data.
 */
export * from './constants.js';
export * from './errors.js';
export { OwnedFd, liveFds, closeAllLive } from './fd.js';
export { cgroup2Mount } from './cgroup.js';
export { Program } from './program.js';
export { BpfMap, possibleCpus, sumPerCpuU64, type BatchOptions } from './map.js';
export { MappedArray, closeAllMappings, liveMappings } from './mapped-array.js';
export { Link, type XdpMode, type TcxDirection } from './link.js';
export { loadObject, LoadedObject, type LoadOptions } from './object.js';
export * from './info.js';
export * from './bpffs.js';
export { Netns, OWN_NETNS } from './netns.js';
export { Pidfd } from './process.js';
export { Features, has as hasFeature, require as requireFeature, type Feature } from './features.js';
export { drainLibbpfLog } from './native.js';
