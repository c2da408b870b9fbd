/**
 * Ethernet frames built from a description of the packet: for running
 * XDP and tc programs with BPF_PROG_TEST_RUN (`ebpf-policy test`, the
 * packet filter's property test). Source and destination MACs are fixed
 * locally administered addresses; lengths and checksums are not filled in
 * (the programs that read these frames do not check them).
 */

/** The IP address family of a frame. */
export type FrameFamily = 4 | 6;

/** A frame to build. `ports` only matter for TCP and UDP. */
export interface FramePacket {
  arp: boolean;
  vlans: number; // 0..2
  family: FrameFamily;
  proto: number; // IP protocol number
  src: number[];
  dst: number[];
  sport: number;
  dport: number;
  ipOptions: boolean; // IPv4: IHL 6
  v4frag: 'none' | 'first' | 'later';
  ext: Array<{ type: 0 | 43 | 60 | 51 | 44; fragOffset: number }>; // IPv6 extension headers, in order
  truncate: number; // bytes of the TCP/UDP header kept (-1: whole header and payload)
}

/** The IP protocol numbers a frame may carry (any other number is sent with an 8-byte opaque header). */
export const IpProto = { icmp: 1, tcp: 6, udp: 17, icmpv6: 58 } as const;

/** A frame with no VLAN tag, IP options, fragmentation or extension headers, carrying the whole TCP/UDP/ICMP header and 8 bytes of payload. */
export function plainPacket(p: Pick<FramePacket, 'family' | 'proto' | 'src' | 'dst' | 'sport' | 'dport'>): FramePacket {
  return { ...p, arp: false, vlans: 0, ipOptions: false, v4frag: 'none', ext: [], truncate: -1 };
}

/**
 * The Ethernet frame of `p`: up to two VLAN tags (802.1ad outside), ARP, or
 * IPv4 (with a 4-byte option, fragment flags) or IPv6 (with extension
 * headers: hop-by-hop 0, routing 43, destination options 60, AH 51,
 * fragment 44), then the TCP, UDP or other header, cut to `truncate` bytes.
 */
export function buildFrame(p: FramePacket): Buffer {
  const b: number[] = [];
  const u16 = (v: number) => b.push((v >> 8) & 255, v & 255);
  b.push(2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1); // MACs
  for (let i = 0; i < p.vlans; i++) {
    u16(i === 0 && p.vlans === 2 ? 0x88a8 : 0x8100);
    u16(100 + i); // TCI
  }
  if (p.arp) {
    u16(0x0806);
    b.push(0, 1, 8, 0, 6, 4, 0, 1, ...Array<number>(20).fill(7));
    return Buffer.from(b);
  }
  if (p.family === 4) {
    u16(0x0800);
    const ihl = p.ipOptions ? 6 : 5;
    b.push(0x40 | ihl, 0);
    u16(0); // total length (not checked)
    u16(0x1234);
    u16(p.v4frag === 'none' ? 0x4000 : p.v4frag === 'first' ? 0x2000 : 0x2000 | 185);
    b.push(64, p.proto, 0, 0, ...p.src, ...p.dst);
    if (p.ipOptions) b.push(1, 1, 1, 0); // NOPs, EOL
  } else {
    u16(0x86dd);
    b.push(0x60, 0, 0, 0);
    u16(0);
    b.push(p.ext.length ? p.ext[0]!.type : p.proto, 64, ...p.src, ...p.dst);
    p.ext.forEach((e, i) => {
      const next = i + 1 < p.ext.length ? p.ext[i + 1]!.type : p.proto;
      if (e.type === 44) {
        b.push(next, 0);
        u16((e.fragOffset << 3) | 1);
        b.push(0, 0, 0, 42);
      } else if (e.type === 51) b.push(next, 1, 0, 0, ...Array<number>(8).fill(0xaa)); // AH: (1 + 2) * 4 bytes
      else b.push(next, 1, ...Array<number>(14).fill(0)); // (1 + 1) * 8 bytes
    });
  }
  const l4: number[] = [];
  if (p.proto === 6) {
    l4.push(p.sport >> 8, p.sport & 255, p.dport >> 8, p.dport & 255, ...Array<number>(8).fill(0), 0x50, 0x02, 0xff, 0xff, 0, 0, 0, 0);
  } else if (p.proto === 17) {
    l4.push(p.sport >> 8, p.sport & 255, p.dport >> 8, p.dport & 255, 0, 16, 0, 0);
  } else l4.push(8, 0, 0, 0, 0, 1, 0, 1);
  const payload = [0xde, 0xad, 0xbe, 0xef, 1, 2, 3, 4];
  b.push(...(p.truncate >= 0 ? l4.slice(0, p.truncate) : [...l4, ...payload]));
  return Buffer.from(b);
}

