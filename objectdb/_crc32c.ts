/**
 * CRC-32C (Castagnoli), the checksum of iSCSI, ext4 and SCTP: reflected
 * polynomial 0x82F63B78, initial value and final XOR 0xFFFFFFFF.
 *
 * Table-driven, eight bytes per step ("slicing-by-8"): eight 256-entry
 * tables, where table k gives the CRC of a byte followed by k zero bytes.
 *
 * @module
 */

const POLYNOMIAL = 0x82f63b78;

/** Eight tables of 256 entries, back to back. */
const TABLES: Uint32Array = buildTables();

function buildTables(): Uint32Array {
  const tables = new Uint32Array(8 * 256);
  for (let byte = 0; byte < 256; byte++) {
    let crc = byte;
    for (let bit = 0; bit < 8; bit++) crc = crc & 1 ? (crc >>> 1) ^ POLYNOMIAL : crc >>> 1;
    tables[byte] = crc;
  }
  for (let byte = 0; byte < 256; byte++) {
    let crc = tables[byte];
    for (let k = 1; k < 8; k++) {
      crc = (crc >>> 8) ^ tables[crc & 0xff];
      tables[k * 256 + byte] = crc;
    }
  }
  return tables;
}

/**
 * The CRC-32C of `data`. Pass the result of a previous call as `crc` to
 * continue a checksum over data that arrives in pieces.
 */
export function crc32c(data: Uint8Array, crc = 0): number {
  const t = TABLES;
  let c = ~crc >>> 0;
  let i = 0;
  const n = data.length;
  for (const last = n - 8; i <= last; i += 8) {
    c ^= data[i] | (data[i + 1] << 8) | (data[i + 2] << 16) | (data[i + 3] << 24);
    c = t[1792 + (c & 0xff)] ^ t[1536 + ((c >>> 8) & 0xff)] ^ t[1280 + ((c >>> 16) & 0xff)] ^
      t[1024 + (c >>> 24)] ^ t[768 + data[i + 4]] ^ t[512 + data[i + 5]] ^
      t[256 + data[i + 6]] ^ t[data[i + 7]];
  }
  for (; i < n; i++) c = t[(c ^ data[i]) & 0xff] ^ (c >>> 8);
  return ~c >>> 0;
}
