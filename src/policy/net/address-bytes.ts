/**
 * IP addresses as the kernel hands them over (network byte order, IPv4 in
 * the first 4 of 16 bytes) turned into text.
 */

/** Text of an IPv4 or IPv6 address held in `b` (RFC 5952 form for IPv6: the longest run of two or more zero groups compressed). */
export function addressBytesText(b: Buffer, family: 4 | 6): string {
  if (family === 4) return `${b[0]}.${b[1]}.${b[2]}.${b[3]}`;
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(b.readUInt16BE(i).toString(16));
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    let j = i;
    while (j < 8 && groups[j] === '0') j++;
    if (j - i > bestLen) {
      best = i;
      bestLen = j - i;
    }
    i = j === i ? i + 1 : j;
  }
  if (best < 0) return groups.join(':');
  return `${groups.slice(0, best).join(':')}::${groups.slice(best + bestLen).join(':')}`;
}
