/** The PortSteering policy documents the benchmarks write (reconcile, million). */

/** One PortSteering document as YAML: `ports` and `addresses` are YAML flow items (addresses omitted: every address). */
export function steeringPolicyYaml(name: string, netns: string, ports: string, addresses: string | undefined, listen: string): string {
  return [
    'apiVersion: ebpf-policy/v1',
    'kind: PortSteering',
    `metadata: {name: ${name}}`,
    'spec:',
    `  netns: ${netns}`,
    '  protocol: tcp',
    `  ports: [${ports}]`,
    ...(addresses ? [`  addresses: [${addresses}]`] : []),
    `  target: {listen: "${listen}"}`,
  ].join('\n');
}
