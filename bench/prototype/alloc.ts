const n = 10000 * 1024;
for (let r = 0; r < 5; r++) {
  let t = performance.now();
  const a = new Float32Array(n);
  const t1 = performance.now() - t;
  t = performance.now();
  a.fill(1);
  const t2 = performance.now() - t;
  t = performance.now();
  a.fill(2);
  const t3 = performance.now() - t;
  const b = new Float32Array(n);
  t = performance.now();
  b.set(a);
  const t4 = performance.now() - t;
  console.log(
    `alloc ${t1.toFixed(1)} first fill ${t2.toFixed(1)} second fill ${t3.toFixed(1)} copy into fresh ${t4.toFixed(1)} ms`,
  );
}
