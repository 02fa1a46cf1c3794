import { spawnSync } from 'node:child_process';

/** Clock ticks per second of /proc/<pid>/stat and /proc/stat times (USER_HZ: 100 on Linux). */
export const CLK_TCK = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout.trim()) || 100;
