/** The one clock type of both daemons: the current time. Tests pass a fake; production passes `() => new Date()`. */
export type Clock = () => Date;

export const systemClock: Clock = () => new Date();
