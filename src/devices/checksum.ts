/**
 * The frame checksum every device and the runtime use: FNV-1a over little-endian 32-bit words (then any
 * tail bytes) — what a scan-out CRC unit stands for. Words, not bytes, because it runs over every byte of
 * every frame at least twice and dominates a pipeline's cost; one function everywhere keeps sequences
 * comparable across devices.
 */
export const CHECKSUM_SEED = 0x811c9dc5;

export function fnv1a32(bytes: Uint8Array, seed: number = CHECKSUM_SEED): number {
  let h = seed;
  const words = bytes.byteOffset % 4 === 0 ? bytes.length >>> 2 : 0;
  if (words > 0) {
    const w = new Uint32Array(bytes.buffer, bytes.byteOffset, words);
    for (let i = 0; i < words; i++) h = Math.imul(h ^ (w[i] as number), 0x01000193);
  }
  for (let i = words * 4; i < bytes.length; i++) h = Math.imul(h ^ (bytes[i] as number), 0x01000193);
  return h;
}
