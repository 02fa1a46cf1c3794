// Types of what scripts/build.mjs exports (tests read the build's configuration).
export interface ExecutableSpec {
  name: string;
  entry: string;
  links: string[];
  alias?: Record<string, string>;
  execArgv?: string[];
  codeCache?: boolean;
  /** Bundle + a V8 code cache trained on an ADD, as SEA assets run by scripts/sea-main.cjs. */
  trainedCache?: boolean;
  /** Output directory below dist/ (default bin). */
  dir?: string;
  testHooks?: boolean;
}
export declare const NODE_TARGET: string;
export declare const SEA_OPTIONS: { disableExperimentalSEAWarning: boolean; execArgvExtension: 'none' | 'env' | 'cli' };
export declare const TEST_HOOKS_DEFINE: string;
export declare const EXECUTABLES: ExecutableSpec[];
export declare const EXTRA_EXECUTABLES: ExecutableSpec[];
