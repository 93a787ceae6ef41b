/** ecprune's version, written into every model's metadata (kept equal to package.json by a test). */
export const VERSION = '0.1.0';
