// The browser softphone: JsSIP registered over a WebSocket to the PBX, the microphone, the
// remote audio, and the state the console's phone panel shows.
//
// This module knows SIP and media, not the page: js/phone.js draws what `snapshot()` says and
// calls the methods below from its buttons. Rules it keeps:
// - JsSIP is loaded only when a browser phone starts (`import()` of the bundle that ./dev builds
//   into vendor/jssip.js), so the console works without it for desk phones.
// - The SIP password goes from the login reply straight into JsSIP's configuration: start()
//   takes it out of the credentials object, never logs, stores or renders it. JsSIP debug is off.
// - iceServers come from the engine and are empty by default: an unreachable STUN server holds
//   every call's ICE gathering for ~40 s.
// - The microphone is opened at start (so a denied permission shows before a call rings, and the
//   level meter works) and each call sends a clone of it: getUserMedia before answering is what
//   gives Chromium real (not mDNS) host candidates.

/** Where the ES module build of JsSIP lives (./dev: npm ci, then esbuild). */
const JSSIP_BUNDLE = "./vendor/jssip.js";
/** RFC 4733 telephone-events in the RTP stream (JsSIP's name for it). */
const DTMF_RFC4733 = "RFC2833";
const DTMF_DIGITS = /^[0-9*#A-D]$/;
/** JsSIP causes that mean the transport, not the registrar, failed. */
const NETWORK_CAUSES = ["Connection Error", "Request Timeout"];
/** Calls that end for these reasons ended normally: no error to show. */
const NORMAL_END = ["Terminated", "Canceled", "Rejected", "Busy", "No Answer", "Redirected"];
const LEVEL_INTERVAL_MS = 100;

/** Audio processing for people: on. Tests that measure a tone turn it off (`constraints`). */
export const HUMAN_AUDIO = Object.freeze({
  echoCancellation: true, noiseSuppression: true, autoGainControl: true,
});

/**
 * The call on the phone, as snapshot() shows it.
 * @typedef {object} PhoneCall
 * @property {string} state   ringing | connecting | in_call | on_hold
 * @property {string} number   the caller's number from the INVITE
 * @property {string} name   the INVITE's display name
 * @property {boolean} muted
 * @property {boolean} held
 * @property {string} digits   the keypad digits sent (the last 32)
 * @property {number} sinceMs   when it was answered (the page's clock)
 */

/**
 * What went wrong: `code` is a key of the panel's texts (phone.err.<code>).
 * @typedef {object} PhoneError
 * @property {string} code
 * @property {string} detail   a JsSIP cause or the browser's words
 * @property {string} status   a SIP status line
 */

/** @typedef {{id: string, label: string}} Device */

/**
 * What the panel shows (Softphone.snapshot()): plain data.
 * @typedef {object} Snapshot
 * @property {string} state
 * @property {string} registration
 * @property {boolean} recovered
 * @property {string} extension
 * @property {PhoneCall | null} call
 * @property {PhoneError[]} errors
 * @property {string} micState
 * @property {string} micId
 * @property {string} speakerId
 * @property {{inputs: Device[], outputs: Device[]}} devices
 * @property {boolean} canPickSpeaker
 */

/** Raised by start() for credentials it cannot use. */
export class SoftphoneError extends Error {
  /** @param {string} code @param {string} [detail] */
  constructor(code, detail = "") {
    super(detail || code);
    this.code = code;
    this.detail = detail;
  }
}

/** The WebSocket URL of the PBX for these credentials: same host as the page.
 * @param {string} wsPath @param {{protocol: string, host: string}} [loc] */
export function sipSocketUrl(wsPath, loc = window.location) {
  const scheme = loc.protocol === "https:" ? "wss" : "ws";
  return `${scheme}://${loc.host}${wsPath}`;
}

/** Check the login reply's `phone` object; returns the password-free part to keep.
 * @param {any} creds */
function checkCreds(creds) {
  /** @param {unknown} v */
  const text = (v) => (typeof v === "string" ? v : "");
  const kept = {
    extension: text(creds?.extension),
    username: text(creds?.username),
    realm: text(creds?.realm),
    wsPath: text(creds?.ws_path),
    iceServers: Array.isArray(creds?.ice_servers) ? creds.ice_servers : [],
    autoAnswer: creds?.auto_answer === true,
  };
  if (creds?.kind !== "browser" || !/^[A-Za-z0-9_.+-]{1,64}$/.test(kept.username)
      || !/^[A-Za-z0-9_.-]{1,128}$/.test(kept.realm) || !kept.wsPath.startsWith("/")) {
    throw new SoftphoneError("bad_config");
  }
  return kept;
}

/** The getUserMedia error as one of our codes. @param {any} err */
function micErrorCode(err) {
  if (err?.name === "NotAllowedError" || err?.name === "SecurityError") return "mic_denied";
  if (err?.name === "NotFoundError" || err?.name === "OverconstrainedError") return "mic_missing";
  return "mic_error";
}

/** A field of something thrown (JsSIP's and the browser's errors name things differently).
 * @param {unknown} err @param {string} name @returns {unknown} */
function errorField(err, name) {
  return err !== null && typeof err === "object"
    ? /** @type {Record<string, unknown>} */ (err)[name] : undefined;
}

/** @param {MediaStream | null | undefined} stream */
function stopStream(stream) {
  for (const track of stream?.getTracks() ?? []) track.stop();
}

export class Softphone {
  /**
   * @param {object} opts
   * @param {() => void} opts.onChange   anything `snapshot()` shows changed
   * @param {(level: number) => void} [opts.onLevel]   the microphone level, 0..1, ~10 a second
   * @param {HTMLAudioElement} opts.audio   plays the other party
   * @param {MediaTrackConstraints} [opts.constraints]   audio constraints (default HUMAN_AUDIO)
   * @param {() => Promise<any>} [opts.loadJsSIP]   how to get JsSIP (tests may replace it)
   */
  constructor({ onChange, onLevel = () => {}, audio, constraints = HUMAN_AUDIO,
    loadJsSIP = () => import(JSSIP_BUNDLE) }) {
    this.onChange = onChange;
    this.onLevel = onLevel;
    this.audio = audio;
    this.constraints = { ...constraints };
    this.loadJsSIP = loadJsSIP;
    this.generation = 0; // bumped by stop(): callbacks of an older UA are ignored
    this.reset();
  }

  /** Forget everything about the last start(). */
  reset() {
    /** @type {any} JsSIP's UA */
    this.ua = null;
    /** @type {any} JsSIP's RTCSession of the call */
    this.session = null;
    /** @type {ReturnType<typeof checkCreds> | null} the password-free part of the credentials */
    this.config = null;
    /** @type {string} off | registering | registered | unreachable | reconnecting | failed */
    this.registration = "off";
    /** @type {boolean} registered again after the network was lost */
    this.recovered = false;
    /** @type {boolean} */
    this.everRegistered = false;
    /** @type {PhoneCall | null} */
    this.call = null;
    // what went wrong, by kind: "phone" (configuration, network, registration) and "media"
    // (microphone, speaker, the call): both show, the phone's first
    /** @type {{phone: PhoneError | null, media: PhoneError | null}} */
    this.errors = { phone: null, media: null };
    /** @type {MediaStream | null} the microphone stream (the meter's; calls get clones) */
    this.mic = null;
    /** @type {string} off | asking | ok | denied | missing | error */
    this.micState = "off";
    /** @type {string} */
    this.micId = "";
    /** @type {string} */
    this.speakerId = "";
    /** @type {{inputs: Device[], outputs: Device[]}} */
    this.devices = { inputs: [], outputs: [] };
    /** @type {{context: AudioContext, timer: number} | null} */
    this.meter = null;
    /** @type {number} ms: a call the user asked for answers by itself until then */
    this.expectUntil = 0;
  }

  /** The one-word state: the call's while there is one, else the registration's. */
  get state() {
    return this.call ? this.call.state : this.registration;
  }

  /** What the panel shows; plain data. @returns {Snapshot} */
  snapshot() {
    return {
      state: this.state,
      registration: this.registration,
      recovered: this.recovered,
      extension: this.config?.extension ?? "",
      call: this.call ? { ...this.call } : null,
      errors: this.errorList(),
      micState: this.micState,
      micId: this.micId,
      speakerId: this.speakerId,
      devices: { inputs: [...this.devices.inputs], outputs: [...this.devices.outputs] },
      canPickSpeaker: typeof this.audio?.setSinkId === "function",
    };
  }

  changed() {
    this.onChange();
  }

  /** @returns {PhoneError[]} */
  errorList() {
    return [this.errors.phone, this.errors.media]
      .filter((e) => e !== null).map((e) => ({ ...e }));
  }

  /** Show an error of this kind ("phone" or "media"; `code` is a key of the panel's texts,
   * `detail` a JsSIP cause or the browser's words, `status` a SIP status line), or clear the
   * kind's error with a null code.
   * @param {"phone" | "media"} kind
   * @param {string | null} code
   * @param {unknown} [detail]
   * @param {unknown} [status]
   */
  setError(kind, code, detail = "", status = "") {
    this.errors[kind] = code
      ? { code, detail: String(detail ?? ""), status: String(status ?? "") } : null;
    this.changed();
  }

  /**
   * Register with these credentials (the login reply's `phone`). Takes the password out of
   * `creds` (it is deleted there) and hands it to JsSIP only.
   * @param {any} creds
   */
  async start(creds) {
    this.stop();
    const password = typeof creds?.password === "string" ? creds.password : "";
    if (creds && typeof creds === "object") delete creds.password;
    const generation = this.generation;
    try {
      this.config = checkCreds(creds);
    } catch (err) {
      this.registration = "failed";
      this.setError("phone", err instanceof SoftphoneError ? err.code : "bad_config");
      return;
    }
    this.registration = "registering";
    this.changed();
    if (!window.isSecureContext || !navigator.mediaDevices?.getUserMedia) {
      this.registration = "failed";
      this.setError("phone", "insecure");
      return;
    }
    this.openMic(); // in parallel: registering does not wait for the permission prompt
    let JsSIP;
    try {
      JsSIP = (await this.loadJsSIP()).default;
    } catch (err) {
      if (generation !== this.generation) return;
      this.registration = "failed";
      this.setError("phone", "bundle_missing", errorField(err, "message") ?? "");
      return;
    }
    if (generation !== this.generation) return;
    JsSIP.debug.disable();
    const cfg = this.config;
    let ua;
    try {
      ua = new JsSIP.UA({
        sockets: [new JsSIP.WebSocketInterface(sipSocketUrl(cfg.wsPath))],
        uri: `sip:${cfg.username}@${cfg.realm}`,
        authorization_user: cfg.username,
        password,
        realm: cfg.realm,
        register: true,
        session_timers: false,
        user_agent: "callcenter-console",
        connection_recovery_min_interval: 2,
        connection_recovery_max_interval: 15,
      });
    } catch (err) {
      // JsSIP's ConfigurationError names the parameter, never its value
      this.registration = "failed";
      this.setError("phone", "bad_config", errorField(err, "parameter") ?? "");
      return;
    }
    this.ua = ua;
    this.watchUa(ua, generation);
    ua.start();
  }

  /** Unregister, end any call, release the microphone. Safe to call at any time. */
  stop() {
    this.generation += 1;
    const ua = this.ua;
    if (this.session && !this.session.isEnded()) {
      try {
        this.session.terminate();
      } catch {
        // already on its way out
      }
    }
    try {
      ua?.stop();
    } catch {
      // a UA that never connected has nothing to unregister
    }
    this.stopMeter();
    stopStream(this.mic);
    if (this.audio) this.audio.srcObject = null;
    const keep = { micId: this.micId, speakerId: this.speakerId };
    this.reset();
    Object.assign(this, keep); // the agent's device choice outlives a login
    this.changed();
  }

  // -- registration ---------------------------------------------------------------------------

  /**
   * Follow the UA's events while it is this start()'s (`generation`).
   * @param {any} ua   JsSIP's UA (JsSIP is not typed here)
   * @param {number} generation
   */
  watchUa(ua, generation) {
    /** @param {string} name @param {(e: any) => void} handler */
    const on = (name, handler) => ua.on(name, (/** @type {any} */ e) => {
      if (generation === this.generation) handler(e);
    });
    on("connected", () => {
      if (this.registration === "unreachable") {
        this.registration = "registering";
        this.setError("phone", null);
      }
    });
    on("disconnected", (e) => {
      const detail = e?.code ? `WebSocket ${e.code}${e.reason ? ` ${e.reason}` : ""}` : "";
      this.recovered = false;
      this.registration = this.everRegistered ? "reconnecting" : "unreachable";
      this.setError("phone", this.everRegistered ? "network_lost" : "network", detail);
    });
    on("registered", () => {
      this.recovered = this.everRegistered;
      this.everRegistered = true;
      this.registration = "registered";
      this.setError("phone", null);
    });
    on("unregistered", () => {
      // JsSIP says so also when the socket drops: "disconnected" already told that story
      if (this.registration !== "registered") return;
      this.registration = "registering";
      this.changed();
    });
    on("registrationFailed", (e) => this.registrationFailed(e));
    on("newRTCSession", (e) => this.newSession(e));
  }

  /** JsSIP's registrationFailed event. @param {{response?: any, cause?: string}} e */
  registrationFailed({ response, cause }) {
    if (cause && NETWORK_CAUSES.includes(cause) && this.registration !== "registering") return;
    const status = response?.status_code
      ? `${response.status_code} ${response.reason_phrase ?? ""}`.trim() : "";
    this.recovered = false;
    this.registration = "failed";
    this.setError("phone", "register_failed", cause ?? "", status);
  }

  // -- calls ----------------------------------------------------------------------------------

  /** JsSIP's newRTCSession event. @param {{originator: string, session: any}} e */
  newSession({ originator, session }) {
    if (originator !== "remote") return; // the engine rings us; we never dial from here
    if (this.session && !this.session.isEnded()) {
      session.terminate({ status_code: 486, reason_phrase: "Busy Here" });
      return;
    }
    this.session = session;
    const identity = session.remote_identity;
    this.call = {
      state: "ringing",
      number: String(identity?.uri?.user ?? ""),
      name: String(identity?.display_name ?? ""),
      muted: false,
      held: false,
      digits: "",
      sinceMs: Date.now(),
    };
    this.watchSession(session);
    // the last call's trouble is not this one's; a microphone problem still is
    if (this.errors.media && !this.errors.media.code.startsWith("mic_")) this.errors.media = null;
    this.changed();
    const expected = Date.now() < this.expectUntil;
    this.expectUntil = 0;
    if (this.config?.autoAnswer || expected) this.accept();
  }

  /** The user just asked the console for a call to this phone (a supervisor's listen, whisper
   * or barge): the next one that rings within ``ms`` is answered by itself.
   * @param {number} ms */
  expectCall(ms) {
    this.expectUntil = Date.now() + ms;
  }

  /** Follow the call's events while it is the current one. @param {any} session   JsSIP's */
  watchSession(session) {
    /** @param {(e: any) => void} handler */
    const mine = (handler) => (/** @type {any} */ e) => {
      if (this.session === session) handler(e);
    };
    session.on("peerconnection", mine(({ peerconnection }) => {
      peerconnection.addEventListener("track",
        (/** @type {RTCTrackEvent} */ e) => this.playRemote(e));
    }));
    session.on("accepted", mine(() => this.setCallState("connecting")));
    session.on("confirmed", mine(() => {
      if (this.call) this.call.sinceMs = Date.now();
      this.setCallState("in_call");
    }));
    session.on("hold", mine(() => this.syncHold()));
    session.on("unhold", mine(() => this.syncHold()));
    session.on("muted", mine(() => this.syncMute()));
    session.on("unmuted", mine(() => this.syncMute()));
    session.on("ended", mine((e) => this.callOver(e)));
    session.on("failed", mine((e) => this.callOver(e)));
  }

  /** @param {string} callState */
  setCallState(callState) {
    if (!this.call) return;
    this.call.state = callState;
    this.changed();
  }

  syncHold() {
    if (!this.call || !this.session) return;
    this.call.held = this.session.isOnHold().local;
    this.call.state = this.call.held ? "on_hold" : "in_call";
    this.changed();
  }

  syncMute() {
    if (!this.call || !this.session) return;
    this.call.muted = this.session.isMuted().audio;
    this.changed();
  }

  /** JsSIP's ended or failed event. @param {{cause?: string}} e */
  callOver({ cause }) {
    const session = this.session;
    this.session = null;
    this.call = null;
    /** @type {RTCRtpSender[]} */
    const senders = session?.connection?.getSenders() ?? [];
    for (const sender of senders) sender.track?.stop();
    if (this.audio) this.audio.srcObject = null;
    if (cause === "User Denied Media Access") {
      this.setError("media", this.micState === "missing" ? "mic_missing" : "mic_denied");
    } else if (cause && !NORMAL_END.includes(cause)) {
      this.setError("media", "call_failed", cause);
    } else {
      if (this.errors.media?.code === "dtmf_failed") this.errors.media = null;
      this.changed();
    }
  }

  /** @param {RTCTrackEvent} event */
  playRemote(event) {
    if (!this.audio) return;
    this.audio.srcObject = event.streams[0] ?? new MediaStream([event.track]);
    if (this.speakerId) this.applySpeaker();
    this.audio.play().catch(() => {}); // autoplay refusals: the next user click resumes it
  }

  /** Answer the ringing call: the microphone first, then JsSIP's answer. */
  async accept() {
    const session = this.session;
    if (!session || this.call?.state !== "ringing") return;
    this.setCallState("connecting");
    const mic = this.mic ?? await this.openMic();
    if (this.session !== session) return;
    if (!mic) {
      session.terminate({ status_code: 480, reason_phrase: "Microphone Unavailable" });
      return;
    }
    try {
      session.answer({
        mediaStream: mic.clone(),
        mediaConstraints: { audio: true, video: false },
        pcConfig: { iceServers: this.config?.iceServers ?? [] },
      });
    } catch (err) {
      this.setError("media", "call_failed", errorField(err, "message") ?? "");
    }
  }

  /** Turn the ringing call down (busy here: the ACD tries the next agent). */
  reject() {
    if (!this.session || this.call?.state !== "ringing") return;
    this.session.terminate({ status_code: 486, reason_phrase: "Busy Here" });
  }

  hangup() {
    if (this.session && !this.session.isEnded()) this.session.terminate();
  }

  toggleMute() {
    const session = this.session;
    if (!session || !this.call || this.call.state === "ringing") return;
    if (session.isMuted().audio) session.unmute({ audio: true });
    else session.mute({ audio: true });
  }

  toggleHold() {
    const session = this.session;
    if (!session || !this.call || !["in_call", "on_hold"].includes(this.call.state)) return;
    if (session.isOnHold().local) session.unhold();
    else session.hold();
  }

  /** One keypad digit, as RFC 4733 events in the RTP stream. @param {string} digit */
  sendDigit(digit) {
    if (!this.session || this.call?.state !== "in_call" || !DTMF_DIGITS.test(digit)) return;
    try {
      this.session.sendDTMF(digit, { transportType: DTMF_RFC4733 });
      this.call.digits = `${this.call.digits}${digit}`.slice(-32);
      this.changed();
    } catch (err) {
      this.setError("media", "dtmf_failed", errorField(err, "message") ?? "");
    }
  }

  // -- devices and the level meter ------------------------------------------------------------

  /** Open (or re-open) the microphone; resolves to the stream, or null with the error shown. */
  async openMic() {
    const generation = this.generation;
    this.micState = "asking";
    this.changed();
    const audio = { ...this.constraints };
    if (this.micId) audio.deviceId = { exact: this.micId };
    let stream;
    try {
      stream = await navigator.mediaDevices.getUserMedia({ audio, video: false });
    } catch (err) {
      if (generation !== this.generation) return null;
      const code = micErrorCode(err);
      this.micState = code.slice(4); // denied | missing | error
      const why = code === "mic_error"
        ? `${errorField(err, "name") ?? ""} ${errorField(err, "message") ?? ""}` : "";
      this.setError("media", code, why);
      return null;
    }
    if (generation !== this.generation) {
      stopStream(stream);
      return null;
    }
    stopStream(this.mic);
    this.mic = stream;
    this.micState = "ok";
    this.micId = stream.getAudioTracks()[0]?.getSettings().deviceId ?? this.micId;
    if (this.errors.media?.code?.startsWith("mic_")) this.errors.media = null;
    this.startMeter(stream);
    await this.listDevices();
    return stream;
  }

  async listDevices() {
    let all = [];
    try {
      all = await navigator.mediaDevices.enumerateDevices();
    } catch {
      return; // the lists stay as they were
    }
    /** @param {MediaDeviceKind} kind */
    const pick = (kind) => all.filter((d) => d.kind === kind && d.deviceId)
      .map((d, i) => ({ id: d.deviceId, label: d.label || `${kind} ${i + 1}` }));
    this.devices = { inputs: pick("audioinput"), outputs: pick("audiooutput") };
    this.changed();
  }

  /** Use another microphone: for the meter at once, and for the call in progress.
   * @param {string} deviceId */
  async setMicrophone(deviceId) {
    if (!this.config || deviceId === this.micId) return;
    this.micId = deviceId;
    const stream = await this.openMic();
    /** @type {RTCRtpSender[]} */
    const senders = this.session?.connection?.getSenders() ?? [];
    const sender = senders.find((s) => s.track?.kind === "audio");
    if (!stream || !sender) return;
    const track = stream.getAudioTracks()[0].clone();
    track.enabled = !this.call?.muted;
    const old = sender.track;
    await sender.replaceTrack(track);
    old?.stop();
  }

  /** Play the other party on this output device, where the browser can choose one.
   * @param {string} deviceId */
  async setSpeaker(deviceId) {
    this.speakerId = deviceId;
    await this.applySpeaker();
    this.changed();
  }

  async applySpeaker() {
    if (typeof this.audio?.setSinkId !== "function") return;
    try {
      await this.audio.setSinkId(this.speakerId);
    } catch (err) {
      this.setError("media", "speaker_failed", errorField(err, "message") ?? "");
    }
  }

  /** @param {MediaStream} stream */
  startMeter(stream) {
    this.stopMeter();
    const Context = window.AudioContext;
    if (!Context) return;
    const context = new Context();
    const analyser = context.createAnalyser();
    analyser.fftSize = 1024;
    context.createMediaStreamSource(stream).connect(analyser);
    const samples = new Float32Array(analyser.fftSize);
    const timer = window.setInterval(() => {
      if (context.state === "suspended") context.resume().catch(() => {});
      analyser.getFloatTimeDomainData(samples);
      let sum = 0;
      for (const s of samples) sum += s * s;
      const rms = Math.sqrt(sum / samples.length);
      // speech sits around 0.01..0.3 RMS: a square root spreads it over the bar
      this.onLevel(Math.min(1, Math.sqrt(rms * 3)));
    }, LEVEL_INTERVAL_MS);
    this.meter = { context, timer };
  }

  stopMeter() {
    if (!this.meter) return;
    window.clearInterval(this.meter.timer);
    this.meter.context.close().catch(() => {});
    this.meter = null;
    this.onLevel(0);
  }

  // -- for tests and diagnostics ---------------------------------------------------------------

  /** The current call's audio counters from getStats(), or null without a call. */
  async stats() {
    const pc = this.session?.connection;
    if (!pc) return null;
    const report = await pc.getStats();
    /** @type {{inbound: Record<string, number> | null, outbound: Record<string, number> | null}} */
    const out = { inbound: null, outbound: null };
    report.forEach((/** @type {Record<string, any>} */ s) => {
      if (s.kind !== "audio") return;
      if (s.type === "inbound-rtp") {
        out.inbound = {
          packetsReceived: s.packetsReceived ?? 0, packetsLost: s.packetsLost ?? 0,
          bytesReceived: s.bytesReceived ?? 0, totalAudioEnergy: s.totalAudioEnergy ?? 0,
          audioLevel: s.audioLevel ?? 0, jitter: s.jitter ?? 0,
        };
      } else if (s.type === "outbound-rtp") {
        out.outbound = { ...out.outbound, packetsSent: s.packetsSent ?? 0,
          bytesSent: s.bytesSent ?? 0 };
      } else if (s.type === "media-source") {
        // what the microphone fed into the call: the outbound level lives here
        out.outbound = { ...out.outbound, totalAudioEnergy: s.totalAudioEnergy ?? 0,
          audioLevel: s.audioLevel ?? 0 };
      }
    });
    return out;
  }

  /** A narrow, read-only view for tests (`window.__softphone`): no credentials, no JsSIP. */
  testHandle() {
    const phone = this;
    return Object.freeze({
      get state() { return phone.state; },
      get registration() { return phone.registration; },
      get errors() { return phone.errorList(); },
      get call() { return phone.call ? { ...phone.call } : null; },
      stats: () => phone.stats(),
    });
  }
}
