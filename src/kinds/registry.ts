/**
 * The registry: every policy kind the product ships, in the order their
 * plans run within a phase. This is the one place that names kinds; the
 * engine, the daemon and the CLI loop over what is listed here. Adding a kind
 * is a new folder under src/kinds/ and one line below (docs/adding-a-kind.md).
 */
import { createKindRegistry, type KindRegistry } from '../policy/kind-registry.js';
import type { AnyPolicyKind } from '../policy/kind.js';
import { createPolicyTestKind } from '../policy/policy-test.js';
import type { AnyReconcilerKind } from '../reconciler/kind.js';
import type { Engine } from '../reconciler/reconcile.js';
import { connectPolicy } from './connect-policy/index.js';
import { packetFilter } from './packet-filter/index.js';
import { portSteering } from './port-steering/index.js';
import { program } from './program/index.js';
import { syscallCounter } from './syscall-counter/index.js';

/** Every kind, as the engine drives it. */
export const KINDS: readonly AnyReconcilerKind[] = [portSteering, packetFilter, connectPolicy, syscallCounter, program];

/** PolicyTest documents: validated and loaded with the kinds' documents, never reconciled (no kind drives them). */
export const POLICY_TEST_DOCUMENT = createPolicyTestKind((kind) => KINDS.find((k) => k.kind === kind)?.policyTest) as unknown as AnyPolicyKind;

/** The document side of the same kinds, and PolicyTest documents, for loading and validation. */
export const DOCUMENT_KINDS: KindRegistry = createKindRegistry([...KINDS.map((k) => k.document), POLICY_TEST_DOCUMENT]);

/** The engine with every registered kind. */
export const ENGINE: Engine = { kinds: KINDS, documents: DOCUMENT_KINDS };
