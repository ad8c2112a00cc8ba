//! The aggregate itself, plain JavaScript with no host in sight (unit-tested by Node).

/** An empty accumulator. */
function empty() {
  return { count: 0, sum: 0, min: null, max: null };
}

function add(acc, n) {
  acc.count += 1;
  acc.sum += n;
  acc.min = acc.min === null || n < acc.min ? n : acc.min;
  acc.max = acc.max === null || n > acc.max ? n : acc.max;
}

function finish(acc) {
  return { ...acc, avg: acc.count === 0 ? null : acc.sum / acc.count };
}

/**
 * count, sum, min, max and avg of `attribute` over `records` (any iterable, consumed once, so a
 * cursor's records never have to be held together). Records whose value is not a number are
 * counted in `skipped`. With `groupBy`, the same per distinct value of that attribute too.
 */
export function aggregate(records, attribute, groupBy) {
  const total = empty();
  const groups = new Map();
  let skipped = 0;
  for (const record of records) {
    const value = record[attribute];
    if (typeof value !== 'number' || !Number.isFinite(value)) {
      skipped += 1;
      continue;
    }
    add(total, value);
    if (groupBy !== undefined) {
      const key = String(record[groupBy] ?? null);
      if (!groups.has(key)) groups.set(key, empty());
      add(groups.get(key), value);
    }
  }
  const out = { ...finish(total), skipped };
  if (groupBy !== undefined) {
    out.groups = Object.fromEntries([...groups.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([k, acc]) => [k, finish(acc)]));
  }
  return out;
}
