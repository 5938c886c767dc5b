/** The release with the most traffic in a split (the stable or live one), or undefined for an empty split. */
export function heaviestRelease(percent: Record<string, number>): string | undefined {
  return Object.entries(percent).sort((a, b) => b[1] - a[1])[0]?.[0];
}
