// Type declarations for avd.js, the JavaScript client of avd (wire schema_version 1).

export declare const VERSION: string;
export declare const SCHEMA_VERSION: 1;
/** WebSocket subprotocol offered by the client. */
export declare const SUBPROTOCOL: 'avd.v1';
/** Events frontends get without subscribing. */
export declare const SYSTEM_EVENTS: readonly ['backend_ready', 'backend_health', 'backend_error'];
export declare const DEFAULT_CONFIG: Readonly<AvdConfig>;

// ---------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------

/** The protocol's error object. */
export interface WireError {
  code: string;
  name: string;
  message: string;
  data?: unknown;
}

export interface AvdErrorOptions {
  code?: string;
  name?: string;
  data?: unknown;
  cause?: unknown;
}

/** Base class of every error the client produces or receives. `code` is a protocol or backend code. */
export declare class AvdError extends Error {
  constructor(message?: string, options?: AvdErrorOptions);
  code: string;
  data: unknown;
  toJSON(): WireError & { data: unknown };
}

/** An AvdError subclass bound to one protocol code. */
export interface AvdErrorClass<C extends string> {
  new (message?: string, options?: { data?: unknown; cause?: unknown }): AvdError & { code: C };
  readonly code: C;
}

export declare const ParseError: AvdErrorClass<'PARSE_ERROR'>;
export type ParseError = InstanceType<typeof ParseError>;
export declare const InvalidRequest: AvdErrorClass<'INVALID_REQUEST'>;
export type InvalidRequest = InstanceType<typeof InvalidRequest>;
export declare const UnsupportedSchema: AvdErrorClass<'UNSUPPORTED_SCHEMA'>;
export type UnsupportedSchema = InstanceType<typeof UnsupportedSchema>;
export declare const Unauthorized: AvdErrorClass<'UNAUTHORIZED'>;
export type Unauthorized = InstanceType<typeof Unauthorized>;
export declare const EncodingError: AvdErrorClass<'ENCODING'>;
export type EncodingError = InstanceType<typeof EncodingError>;
export declare const PayloadTooLarge: AvdErrorClass<'PAYLOAD_TOO_LARGE'>;
export type PayloadTooLarge = InstanceType<typeof PayloadTooLarge>;
export declare const MethodNotFound: AvdErrorClass<'METHOD_NOT_FOUND'>;
export type MethodNotFound = InstanceType<typeof MethodNotFound>;
export declare const AlreadyRegistered: AvdErrorClass<'ALREADY_REGISTERED'>;
export type AlreadyRegistered = InstanceType<typeof AlreadyRegistered>;
export declare const BackendUnavailableError: AvdErrorClass<'BACKEND_UNAVAILABLE'>;
export type BackendUnavailableError = InstanceType<typeof BackendUnavailableError>;
export declare const TimeoutError: AvdErrorClass<'TIMEOUT'>;
export type TimeoutError = InstanceType<typeof TimeoutError>;
export declare const CancelledError: AvdErrorClass<'CANCELLED'>;
export type CancelledError = InstanceType<typeof CancelledError>;
export declare const QueueFull: AvdErrorClass<'QUEUE_FULL'>;
export type QueueFull = InstanceType<typeof QueueFull>;
export declare const EventLoopClosed: AvdErrorClass<'EVENT_LOOP_CLOSED'>;
export type EventLoopClosed = InstanceType<typeof EventLoopClosed>;
export declare const ScriptExecutionError: AvdErrorClass<'SCRIPT_EXECUTION'>;
export type ScriptExecutionError = InstanceType<typeof ScriptExecutionError>;
export declare const WindowOperationError: AvdErrorClass<'WINDOW_OPERATION'>;
export type WindowOperationError = InstanceType<typeof WindowOperationError>;
export declare const InternalError: AvdErrorClass<'INTERNAL'>;
export type InternalError = InstanceType<typeof InternalError>;

/** Error class for each protocol code; BACKEND_ERROR and unknown codes map to AvdError. */
export declare const ERRORS: Readonly<Record<string, AvdErrorClass<string>>>;

/** Wire error object -> Error of the matching class (backend names and codes are kept). */
export declare function errorFromWire(err: unknown): AvdError;
/** Anything a handler threw -> wire error object (code defaults to BACKEND_ERROR). */
export declare function errorToWire(err: unknown): WireError & { data: unknown };

// ---------------------------------------------------------------------------
// Client
// ---------------------------------------------------------------------------

export interface AvdConfig {
  /** Default call timeout in ms (0 = none). Default 30000, or avd's welcome.config value. */
  callTimeoutMs: number;
  /** Reject calls to an unhealthy backend at once. Default true, or avd's welcome.config value. */
  backendFailFast: boolean;
  /** Client-side silence limit per backend, armed by its first backend_health; 0 = off (default). */
  heartbeatTimeoutMs: number;
}

export interface ConnectOptions {
  /** Token; defaults from __AVD__, __AURORAVIEW_CONFIG__, ?token= of the URL or page, AVD_TOKEN. */
  token?: string;
  /** 'frontend' (default) or 'backend'. */
  role?: 'frontend' | 'backend';
  /** Free label; avd calls a backend by this name. */
  name?: string;
  /** Event patterns kept subscribed regardless of handlers. */
  subscribe?: string[];
  /** Initial settings (counted as set by the client, so welcome.config does not override them). */
  config?: Partial<AvdConfig>;
  /** Reconnect backoff (default 1000 → 5000 ms with jitter), or false for none. */
  reconnect?: { minMs?: number; maxMs?: number } | false;
  /** Extra wait after timeout_ms before the client's own timer fires (default 1000). */
  timeoutGraceMs?: number;
  /** Give up a connection attempt without welcome after this long (default 10000; 0 = never). */
  helloTimeoutMs?: number;
  /** WebSocket subprotocols to offer (default ['avd.v1']). */
  protocols?: string[];
  /** WebSocket constructor to use (default: window/global WebSocket, else the `ws` package). */
  WebSocket?: unknown;
  /** Window to read location / __AVD__ / __AURORAVIEW_CONFIG__ from (default globalThis.window). */
  window?: any;
  /** Ask avd.methods after each welcome to learn method owners (default true). */
  fetchMethods?: boolean;
  /** Called with errors that have no caller to go to (failing handlers, lost connections). Default: console.error. */
  onError?: (error: unknown, what: string) => void;
  /** AvdClient only: start connecting in the constructor (default true). */
  autoConnect?: boolean;
}

export interface CallOptions {
  /** ms; default callTimeoutMs; 0 = no timeout. Sent as timeout_ms. */
  timeout?: number;
  /** Aborting sends {"type":"cancel"} and rejects with CancelledError. */
  signal?: AbortSignal;
  /** Called with each chunk's data, in order, before the call resolves. */
  onChunk?: (data: any) => void;
}

export interface EmitOptions {
  /** Deliver only to these sessions (subscribed or not). */
  to?: string | string[];
  /** Deliver to this client too, when subscribed. */
  echo?: boolean;
}

export interface EventMeta {
  event: string;
  /** Publisher's session id; null for local trigger(). */
  from: string | null;
}

export type EventHandler<T = any> = (data: T, meta: EventMeta) => unknown;

export interface CallContext {
  /** avd's id for this call. */
  id: string | number;
  method: string;
  /** Caller's session id. */
  caller: string | null;
  /** Timeout in force in avd (0 = none). */
  timeoutMs: number | null;
  /** Aborted when avd cancels the call (reason: CancelledError/TimeoutError with .reason) or the connection drops. */
  signal: AbortSignal;
  /** Sends a progressive result; false when it could not be sent. */
  chunk(data?: unknown): boolean;
  client: AvdClient;
}

export type MethodHandler = (params: any, ctx: CallContext) => unknown | Promise<unknown> | AsyncIterable<unknown>;

export interface BackendInfo {
  session: string;
  name: string | null;
  /** 'ready' | 'alive' | 'unhealthy' | 'unknown' */
  status: string;
  handlers: string[];
  /** Date.now() of the last backend_ready/backend_health. */
  lastSignal: number;
  /** Why it is unhealthy, when it is. */
  reason: string | null;
  /** data of the last backend_error. */
  lastError: Record<string, unknown> | null;
}

export interface MethodInfo {
  method: string;
  session: string | null;
  backend: string | null;
  role?: string;
}

export type ConnectionState = 'idle' | 'connecting' | 'open' | 'disconnected' | 'closed';

/** `client.api.echo(x)` calls `api.echo` with params x. */
export type NamespaceProxy = { readonly [method: string]: (params?: unknown, options?: CallOptions) => Promise<any> };

/**
 * Chunks of one call. `for await (const data of stream)` yields each chunk's
 * data in order; the final result is `stream.result` and the value of the
 * last `{done: true}` step. Leaving the loop early cancels the call.
 */
export declare class AvdStream<T = any, R = any> implements AsyncIterableIterator<T> {
  readonly method: string;
  /** Final result; rejects with the call's error (CancelledError after cancel()). */
  readonly result: Promise<R>;
  next(): Promise<IteratorResult<T, R | undefined>>;
  return(value?: any): Promise<IteratorResult<T, any>>;
  cancel(reason?: unknown): void;
  [Symbol.asyncIterator](): AvdStream<T, R>;
}

export declare class AvdClient {
  /**
   * Starts connecting at once and keeps trying (with backoff) until close().
   * `ready` resolves on the first welcome.
   */
  constructor(url?: string | URL, options?: ConnectOptions);
  constructor(options?: ConnectOptions);
  readonly url: string;
  readonly role: string;
  readonly name: string | undefined;
  /** Session id from the last welcome. */
  readonly session: string | null;
  readonly server: string | null;
  /** welcome.config of the last welcome. */
  readonly serverConfig: Record<string, unknown> | null;
  readonly heartbeatIntervalMs: number | null;
  readonly state: ConnectionState;
  /** Resolves with the client on the first welcome; rejects if closed before. */
  readonly ready: Promise<AvdClient>;
  readonly api: NamespaceProxy;

  setConfig(partial: Partial<AvdConfig>): AvdConfig;
  getConfig(): AvdConfig;
  isReady(): boolean;
  whenReady(): Promise<AvdClient>;
  onStatus(listener: (state: ConnectionState) => void): () => void;
  close(code?: number, reason?: string): Promise<void>;

  call<R = any>(method: string, params?: unknown, options?: CallOptions): Promise<R>;
  stream<T = any, R = any>(method: string, params?: unknown, options?: CallOptions): AvdStream<T, R>;
  namespace(ns: string): NamespaceProxy;

  on<T = any>(pattern: string, handler: EventHandler<T>): () => void;
  once<T = any>(pattern: string, handler: EventHandler<T>): () => void;
  once<T = any>(pattern: string): Promise<T>;
  off(pattern: string, handler?: EventHandler | null): void;
  emit(event: string, data?: unknown, options?: EmitOptions): boolean;
  trigger(event: string, data?: unknown): void;
  /** Resolves once avd acknowledged the subscription changes made so far. */
  sync(): Promise<void>;
  subscriptions(): string[];

  register(method: string, handler: MethodHandler): Promise<() => Promise<void>>;
  register(methods: Record<string, MethodHandler>): Promise<() => Promise<void>>;
  unregister(methods: string | string[]): Promise<void>;
  registeredMethods(): string[];
  announceReady(): void;

  backends(): BackendInfo[];
  backendFor(method: string): BackendInfo | null;
  methods(): Promise<MethodInfo[]>;
}

/**
 * Connects; resolves with the client once avd's welcome arrived, rejects when
 * this first attempt fails (Unauthorized, UnsupportedSchema,
 * BackendUnavailableError, TimeoutError). Afterwards it reconnects by itself.
 */
export declare function connect(url?: string | URL, options?: ConnectOptions): Promise<AvdClient>;
export declare function connect(options?: ConnectOptions): Promise<AvdClient>;

export declare function resolveEndpoint(url?: string, options?: { token?: string }, win?: any): { url: string; token: string | undefined };
export declare function backoffDelay(attempt: number, minMs: number, maxMs: number, rand: number): number;
export declare function matchEvent(pattern: string, event: string): boolean;
export declare function parseMethodsResult(result: unknown): MethodInfo[];

// ---------------------------------------------------------------------------
// window.auroraview
// ---------------------------------------------------------------------------

export interface AuroraViewCallOptions {
  timeout?: number;
  signal?: AbortSignal;
  onChunk?: (data: any) => void;
}

export interface AuroraViewBridge {
  readonly client: AvdClient;
  readonly _isAvd: true;
  _ready: boolean;
  _boundMethods: Record<string, true>;
  api: Record<string, (params?: unknown, options?: AuroraViewCallOptions) => Promise<any>>;
  call<R = any>(method: string, params?: unknown, options?: AuroraViewCallOptions): Promise<R>;
  send_event(event: string, detail?: unknown): void;
  on<T = any>(event: string, handler: (detail: T, meta: EventMeta) => unknown): () => void;
  once<T = any>(event: string, handler: (detail: T, meta: EventMeta) => unknown): () => void;
  off(event: string, handler?: (detail: any, meta: EventMeta) => unknown): void;
  trigger(event: string, detail?: unknown): void;
  setConfig(partial: Partial<AvdConfig>): AvdConfig;
  getConfig(): AvdConfig;
  whenReady(): Promise<AuroraViewBridge>;
  isReady(): boolean;
  isMethodBound(name: string): boolean;
  getBoundMethods(): string[];
  _registerApiMethods(namespace: string, methods: string[], options?: { allowRebind?: boolean }): void;
  [namespace: string]: any;
}

export interface InstallAuroraViewOptions extends ConnectOptions {
  /** Use this client instead of creating one. */
  client?: AvdClient;
  url?: string;
}

/**
 * Sets `win.auroraview` to an AuroraView-compatible bridge (reads
 * win.__AURORAVIEW_CONFIG__; dispatches `auroraviewready` on win once connected).
 */
export declare function installAuroraView(win?: any, options?: InstallAuroraViewOptions): AuroraViewBridge;
