import assert from "node:assert/strict";
import { formatFromPath, jsonCodec, msgpackCodec, resolveCodec, yamlCodec } from "./codec.ts";

const text = (data: string | Uint8Array) =>
  typeof data === "string" ? data : new TextDecoder().decode(data);

Deno.test("formats are picked from file extensions", () => {
  assert.equal(formatFromPath("a/b.yaml"), "yaml");
  assert.equal(formatFromPath("B.YML"), "yaml");
  assert.equal(formatFromPath("x.msgpack"), "msgpack");
  assert.equal(formatFromPath("x.mpk"), "msgpack");
  assert.equal(formatFromPath("x.json"), "json");
  assert.equal(formatFromPath("x"), "json");
});

Deno.test("JSON honours indent, replacer and reviver", () => {
  const compact = jsonCodec({ indent: 0 });
  assert.equal(compact.encode({ a: [1, 2] }), '{"a":[1,2]}');
  const custom = jsonCodec({
    replacer: (_key, value) => value instanceof Set ? { $set: [...value] } : value,
    reviver: (_key, value) =>
      value && typeof value === "object" && "$set" in value
        ? new Set((value as { $set: unknown[] }).$set)
        : value,
  });
  const encoded = custom.encode({ tags: new Set(["a"]) });
  assert.deepEqual(custom.decode(new TextEncoder().encode(text(encoded))), {
    tags: new Set(["a"]),
  });
});

Deno.test("JSON decoding is strict about UTF-8", () => {
  assert.throws(() => jsonCodec().decode(new Uint8Array([0x22, 0xff, 0x22])), TypeError);
  assert.equal(jsonCodec().decode(new TextEncoder().encode("\uFEFF7")), 7);
});

Deno.test("YAML round-trips, keeps shared objects as aliases, refuses functions", () => {
  const codec = yamlCodec();
  const shared = { x: 1 };
  const value = { a: shared, b: shared, when: "2024-01-01", n: 10n };
  const decoded = codec.decode(new TextEncoder().encode(text(codec.encode(value)))) as typeof value;
  assert.deepEqual(decoded.a, { x: 1 });
  assert.equal(decoded.a, decoded.b);
  assert.throws(() => codec.encode({ f: () => 1 }), /function.*\$\.f/);
  assert.throws(() => codec.encode(undefined), TypeError);
  assert.throws(() => codec.decode(new TextEncoder().encode("   \n")), SyntaxError);
  assert.throws(() => codec.decode(new TextEncoder().encode("a: [1, 2")), Error);
});

Deno.test("MessagePack round-trips bytes and dates, refuses what it would mangle", () => {
  const codec = msgpackCodec();
  const value = { bytes: new Uint8Array([1, 2]), when: new Date(5), list: [1, "two", null] };
  assert.deepEqual(codec.decode(codec.encode(value) as Uint8Array), value);
  const cyclic: Record<string, unknown> = {};
  cyclic.me = cyclic;
  assert.throws(() => codec.encode(cyclic), /cycle at \$\.me/);
  assert.throws(() => codec.encode({ m: new Map() }), /Map at \$\.m/);
  assert.throws(() => codec.encode({ s: new Set() }), /Set/);
  assert.throws(() => codec.encode({ n: 1n }), /BigInt/);
  const big = msgpackCodec({ encode: { useBigInt64: true }, decode: { useBigInt64: true } });
  assert.deepEqual(big.decode(big.encode({ n: 1n }) as Uint8Array), { n: 1n });
});

Deno.test("custom codecs are checked for shape and output", () => {
  const upper = resolveCodec<string>({
    encode: (value) => value.toUpperCase(),
    decode: (data) => new TextDecoder().decode(data).toLowerCase(),
  });
  assert.equal(upper.name, "custom");
  assert.equal(upper.encode("abc"), "ABC");
  assert.throws(() => resolveCodec({ encode: () => 1 } as never), /encode\(\) and decode\(\)/);
  assert.throws(() => resolveCodec("xml" as never), /"xml"/);
  const broken = resolveCodec({ name: "broken", encode: () => 5 as never, decode: () => 0 });
  assert.throws(() => broken.encode(1), /broken codec's encode\(\) returned 5/);
});

Deno.test("JSON refuses the same values with and without a replacer", () => {
  const cyclic: Record<string, unknown> = {};
  cyclic.loop = [cyclic];
  const bad = [
    cyclic,
    { n: 1n },
    { f: () => 0 },
    [undefined],
    [, 1],
    { x: -Infinity },
    { m: new Map() },
    { t: { toJSON: () => NaN } },
    { s: Symbol("s") },
  ];
  for (const codec of [jsonCodec(), jsonCodec({ replacer: (_key, value) => value })]) {
    for (const value of bad) assert.throws(() => codec.encode(value), TypeError, String(value));
    const bare = Object.assign(Object.create(null), { a: 1 });
    class Point {
      constructor(public x = 1, public y = 2) {}
    }
    assert.equal(
      codec.encode({
        bare,
        when: new Date(0),
        skip: undefined,
        p: new Point(),
        s: new String("é"),
      }),
      '{\n  "bare": {\n    "a": 1\n  },\n  "when": "1970-01-01T00:00:00.000Z",\n  "p": {\n    "x": 1,\n    "y": 2\n  },\n  "s": "é"\n}\n',
    );
  }
  assert.throws(() => jsonCodec().encode(cyclic), /cycle at \$\.loop\[0\]/);
});
