/**
 * Bisection over the integers between `good`, which meets a test that holds up to a point, and
 * `bad`, which does not (either may be the larger): the last integer towards `bad` that meets it.
 * `meets` is called only strictly between the two, each middle once.
 */
export async function bisect(
  good: number,
  bad: number,
  meets: (value: number) => Promise<boolean>,
): Promise<number> {
  while (Math.abs(bad - good) > 1) {
    const middle = Math.floor((good + bad) / 2);
    if (await meets(middle)) good = middle;
    else bad = middle;
  }
  return good;
}
