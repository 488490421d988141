// Texts of the agent console, Mandarin first (zh is the default), English too.
//
// Static labels in index.html carry data-i18n="key" (textContent), data-i18n-placeholder,
// data-i18n-title or data-i18n-aria; applyTranslations() fills them. Code that builds elements
// calls t(key, params). The chosen language is remembered in localStorage.

const STORAGE_KEY = "callcenter.console.lang";
export const LANGS = ["zh", "en"];

const STRINGS = {
  zh: {
    "app.title": "座席工作台",
    "header.lang": "语言",
    "header.logout": "退出",
    "role.agent": "座席",
    "role.supervisor": "班长",
    "role.admin": "管理员",
    "conn.online": "已连接",
    "conn.offline": "未连接",
    "conn.reconnecting": "正在重连…",

    "login.title": "座席登录",
    "login.agent": "工号",
    "login.password": "密码",
    "login.submit": "登录",
    "login.busy": "正在登录…",
    "login.bad_agent": "工号只能包含字母、数字、点、下划线和连字符（最多 32 位）",
    "login.no_password": "请输入密码",
    "login.lost": "与服务器的连接已断开，正在重连…",
    "login.reconnected": "已重新连接，请重新登录",
    "login.logged_out": "您已退出登录",
    "login.session_ended": "会话已结束：{reason}",

    "tab.desk": "工作台",
    "tab.wallboard": "监控墙",

    "state.title": "座席状态",
    "state.ready": "就绪",
    "state.not_ready": "未就绪",
    "state.reason": "原因",
    "state.logged_out": "已登出",
    "state.ringing": "振铃",
    "state.on_call": "通话中",
    "state.on_hold": "保持",
    "state.wrap_up": "话后处理",

    "reason.break": "小休",
    "reason.lunch": "用餐",
    "reason.meal": "用餐",
    "reason.training": "培训",
    "reason.meeting": "会议",
    "reason.after_call": "话后工作",
    "reason.after-call": "话后工作",
    "reason.other": "其他",
    "reason.login": "刚登录",
    "reason.no answer": "未接听",
    "reason.rejected": "拒接",
    "reason.forced": "班长设置",

    "queues.title": "队列",
    "queues.name": "队列",
    "queues.waiting": "排队",
    "queues.longest": "最长等待",
    "queues.sl": "服务水平",
    "queues.asa": "平均应答",
    "queues.answered": "已接",
    "queues.abandoned": "放弃",
    "queues.none": "暂无队列数据",
    "queues.sl_goal": "目标：{secs} 秒内接听 {share}",

    "call.none": "当前没有通话",
    "call.none_hint": "就绪后，来电将在此弹屏显示。",
    "call.status.ringing": "振铃中",
    "call.status.talking": "通话中",
    "call.status.held": "保持中",
    "call.status.wrap_up": "话后处理",
    "call.answer_hint": "请在话机上接听",
    "call.unknown_customer": "未识别客户",
    "call.account": "资金账号",
    "call.caller": "来电号码",
    "call.queue": "队列",
    "call.waited": "排队等待",
    "call.balance": "资产概要",
    "call.cash": "可用资金",
    "call.market_value": "证券市值",
    "call.total": "总资产",
    "call.ivr": "自助语音轨迹",
    "call.ivr_lang": "语音语言",
    "call.last_failure": "最近失败",
    "call.recent": "近期接触",
    "call.recent_none": "无近期接触记录",
    "call.recording_on": "录音中",
    "call.recording_paused": "录音已暂停",
    "call.recording_off": "未录音",
    "call.close": "关闭",
    "call.callback": "回拨客户",

    "contact.call": "来电",
    "contact.statement": "对账单",
    "contact.note": "通知",
    "contact.callback": "回呼",

    "tier.platinum": "白金卡",
    "tier.gold": "金卡",
    "tier.silver": "银卡",
    "tier.ordinary": "普通",

    "ctl.hangup": "挂断",
    "ctl.hold": "保持",
    "ctl.resume": "恢复",
    "ctl.record_pause": "暂停录音",
    "ctl.record_resume": "恢复录音",
    "ctl.transfer": "转接",
    "ctl.consult": "咨询",
    "ctl.conference": "会议",
    "ctl.consult_complete": "完成转接",
    "ctl.consult_cancel": "取消咨询",
    "ctl.consult_with": "咨询 {target}：{state}",
    "ctl.conference_with": "会议成员：{targets}",
    "consult.ringing": "振铃中",
    "consult.talking": "通话中",
    "consult.ended": "已结束",

    "target.title.transfer": "盲转",
    "target.title.consult": "咨询转接",
    "target.title.conference": "三方会议",
    "target.kind": "目标类型",
    "target.kind.queue": "队列",
    "target.kind.agent": "座席",
    "target.kind.number": "号码",
    "target.value": "目标",
    "target.ok": "确定",
    "target.cancel": "取消",
    "target.bad_id": "队列或工号只能包含字母、数字、点、下划线和连字符",

    "ok.transfer": "已转接",
    "ok.consult": "正在呼叫咨询方",
    "ok.conference": "正在邀请第三方",
    "ok.click_to_call": "正在外呼 {number}",
    "ok.callback": "正在回拨客户",
    "ok.task": "跟进任务已创建",
    "ok.message": "已提交发送",
    "ok.spy": "正在呼叫您的话机",
    "ok.force": "已设置 {agent} 为 {state}",

    "ctc.title": "外呼",
    "ctc.number": "电话号码",
    "ctc.account": "资金账号（可选）",
    "ctc.submit": "呼叫",

    "msg.title": "发送对账单 / 通知",
    "msg.account": "资金账号（留空：本通话客户）",
    "msg.need_account": "本通话未识别客户，请填写资金账号",
    "msg.channel": "渠道",
    "msg.channel.sms": "短信",
    "msg.channel.email": "电子邮件",
    "msg.channel.fax": "传真",
    "msg.template": "内容",
    "msg.template.statement": "对账单",
    "msg.template.note": "通知",
    "msg.text": "附言",
    "msg.send": "发送",

    "task.title": "创建跟进任务",
    "task.text": "任务内容",
    "task.account": "资金账号（可选）",
    "task.phone": "联系电话（可选）",
    "task.due": "截止时间（可选）",
    "task.agent": "指派给工号（默认自己）",
    "task.submit": "创建",
    "task.need_text": "请填写任务内容",
    "task.use_call": "关联当前客户（{who}）",

    "wrap.title": "话后小结",
    "wrap.disposition": "处理结果",
    "wrap.choose": "请选择…",
    "wrap.notes": "备注",
    "wrap.save": "保存小结",
    "wrap.saved": "小结已保存",
    "wrap.left": "剩余 {time}",
    "wrap.over": "话后时间已到",
    "wrap.need_disposition": "请选择处理结果",
    "disp.resolved": "已解决",
    "disp.follow_up": "需跟进",
    "disp.complaint": "投诉",
    "disp.order_help": "委托协助",
    "disp.info": "信息咨询",
    "disp.other": "其他",

    "val.digits": "只能输入数字",
    "val.dialable": "号码只能包含数字、+、* 和 #",

    "wb.queues": "队列实况",
    "wb.seats": "座席状态",
    "wb.filter": "按状态筛选",
    "wb.all": "全部",
    "wb.agent": "工号",
    "wb.name": "姓名",
    "wb.state": "状态",
    "wb.reason": "原因",
    "wb.time": "时长",
    "wb.call": "通话",
    "wb.actions": "操作",
    "wb.listen": "监听",
    "wb.whisper": "耳语",
    "wb.barge": "强插",
    "wb.force_ready": "置就绪",
    "wb.force_not_ready": "置未就绪",
    "wb.force_logout": "强制登出",
    "wb.empty": "暂无数据",
    "wb.updated": "更新于 {time}",

    "err.malformed": "请求格式错误",
    "err.unsupported_version": "协议版本不受支持，请刷新页面",
    "err.unknown_command": "服务器不支持此操作",
    "err.login_required": "请先登录",
    "err.bad_credentials": "工号或密码错误",
    "err.login_timeout": "登录超时，请重试",
    "err.login_paused": "登录失败次数过多，此工号已暂停登录，请稍后再试",
    "err.already_logged_in": "此连接已登录",
    "err.forbidden": "您的角色无权执行此操作",
    "err.rate_limited": "操作过于频繁，请稍候再试",
    "err.too_large": "消息过大",
    "err.invalid_state": "当前座席状态不允许此操作",
    "err.no_call": "当前没有通话",
    "err.bad_number": "号码只能包含数字、+、* 和 #",
    "err.not_found": "未找到（座席、队列、通话或账户）",
    "err.unavailable": "电话系统暂不可用，请稍后再试",
    "err.internal": "服务器内部错误",
    "err.timeout": "服务器无应答",
    "err.closed": "与服务器的连接已断开",
    "err.offline": "无法连接服务器",
    "err.unknown": "操作失败（{code}）",
    "none": "—",
  },

  en: {
    "app.title": "Agent console",
    "header.lang": "Language",
    "header.logout": "Log out",
    "role.agent": "Agent",
    "role.supervisor": "Supervisor",
    "role.admin": "Admin",
    "conn.online": "Connected",
    "conn.offline": "Offline",
    "conn.reconnecting": "Reconnecting…",

    "login.title": "Agent log in",
    "login.agent": "Agent ID",
    "login.password": "Password",
    "login.submit": "Log in",
    "login.busy": "Logging in…",
    "login.bad_agent": "Agent ID: letters, digits, dot, underscore and hyphen only (up to 32)",
    "login.no_password": "Enter your password",
    "login.lost": "Connection to the server lost; reconnecting…",
    "login.reconnected": "Reconnected. Please log in again.",
    "login.logged_out": "You have logged out.",
    "login.session_ended": "Session ended: {reason}",

    "tab.desk": "Desk",
    "tab.wallboard": "Wallboard",

    "state.title": "Seat state",
    "state.ready": "Ready",
    "state.not_ready": "Not ready",
    "state.reason": "Reason",
    "state.logged_out": "Logged out",
    "state.ringing": "Ringing",
    "state.on_call": "On call",
    "state.on_hold": "On hold",
    "state.wrap_up": "Wrap-up",

    "reason.break": "Break",
    "reason.lunch": "Lunch",
    "reason.meal": "Meal",
    "reason.training": "Training",
    "reason.meeting": "Meeting",
    "reason.after_call": "After-call work",
    "reason.after-call": "After-call work",
    "reason.other": "Other",
    "reason.login": "Just logged in",
    "reason.no answer": "No answer",
    "reason.rejected": "Rejected",
    "reason.forced": "Set by supervisor",

    "queues.title": "Queues",
    "queues.name": "Queue",
    "queues.waiting": "Waiting",
    "queues.longest": "Longest",
    "queues.sl": "Service level",
    "queues.asa": "ASA",
    "queues.answered": "Answered",
    "queues.abandoned": "Abandoned",
    "queues.none": "No queue figures yet",
    "queues.sl_goal": "Goal: {share} answered within {secs} s",

    "call.none": "No call",
    "call.none_hint": "When you are ready, an incoming call pops up here.",
    "call.status.ringing": "Ringing",
    "call.status.talking": "Talking",
    "call.status.held": "On hold",
    "call.status.wrap_up": "Wrap-up",
    "call.answer_hint": "Answer on your phone",
    "call.unknown_customer": "Unidentified caller",
    "call.account": "Account",
    "call.caller": "Caller",
    "call.queue": "Queue",
    "call.waited": "Waited",
    "call.balance": "Balance",
    "call.cash": "Cash",
    "call.market_value": "Market value",
    "call.total": "Total",
    "call.ivr": "IVR path",
    "call.ivr_lang": "IVR language",
    "call.last_failure": "Last failure",
    "call.recent": "Recent contacts",
    "call.recent_none": "No recent contacts",
    "call.recording_on": "Recording",
    "call.recording_paused": "Recording paused",
    "call.recording_off": "Not recorded",
    "call.close": "Close",
    "call.callback": "Call the customer back",

    "contact.call": "Call",
    "contact.statement": "Statement",
    "contact.note": "Note",
    "contact.callback": "Callback",

    "tier.platinum": "Platinum",
    "tier.gold": "Gold",
    "tier.silver": "Silver",
    "tier.ordinary": "Ordinary",

    "ctl.hangup": "Hang up",
    "ctl.hold": "Hold",
    "ctl.resume": "Resume",
    "ctl.record_pause": "Pause recording",
    "ctl.record_resume": "Resume recording",
    "ctl.transfer": "Transfer",
    "ctl.consult": "Consult",
    "ctl.conference": "Conference",
    "ctl.consult_complete": "Complete transfer",
    "ctl.consult_cancel": "Cancel consult",
    "ctl.consult_with": "Consulting {target}: {state}",
    "ctl.conference_with": "In conference with {targets}",
    "consult.ringing": "ringing",
    "consult.talking": "talking",
    "consult.ended": "ended",

    "target.title.transfer": "Blind transfer",
    "target.title.consult": "Consult",
    "target.title.conference": "Conference",
    "target.kind": "Target type",
    "target.kind.queue": "Queue",
    "target.kind.agent": "Agent",
    "target.kind.number": "Number",
    "target.value": "Target",
    "target.ok": "OK",
    "target.cancel": "Cancel",
    "target.bad_id": "Queue or agent ID: letters, digits, dot, underscore and hyphen only",

    "ok.transfer": "Transferred",
    "ok.consult": "Calling the consulted party",
    "ok.conference": "Inviting the third party",
    "ok.click_to_call": "Calling {number}",
    "ok.callback": "Calling the customer back",
    "ok.task": "Follow-up task created",
    "ok.message": "Queued for sending",
    "ok.spy": "Calling your phone",
    "ok.force": "{agent} set to {state}",

    "ctc.title": "Call out",
    "ctc.number": "Phone number",
    "ctc.account": "Account (optional)",
    "ctc.submit": "Call",

    "msg.title": "Send statement / note",
    "msg.account": "Account (empty: this call's customer)",
    "msg.need_account": "The caller was not identified: enter the account",
    "msg.channel": "Channel",
    "msg.channel.sms": "SMS",
    "msg.channel.email": "E-mail",
    "msg.channel.fax": "Fax",
    "msg.template": "Content",
    "msg.template.statement": "Statement",
    "msg.template.note": "Note",
    "msg.text": "Message",
    "msg.send": "Send",

    "task.title": "Create follow-up task",
    "task.text": "Task",
    "task.account": "Account (optional)",
    "task.phone": "Phone (optional)",
    "task.due": "Due (optional)",
    "task.agent": "Assign to agent ID (default: me)",
    "task.submit": "Create",
    "task.need_text": "Describe the task",
    "task.use_call": "About the current customer ({who})",

    "wrap.title": "Wrap-up",
    "wrap.disposition": "Disposition",
    "wrap.choose": "Choose…",
    "wrap.notes": "Notes",
    "wrap.save": "Save wrap-up",
    "wrap.saved": "Wrap-up saved",
    "wrap.left": "{time} left",
    "wrap.over": "Wrap-up time is over",
    "wrap.need_disposition": "Choose a disposition",
    "disp.resolved": "Resolved",
    "disp.follow_up": "Needs follow-up",
    "disp.complaint": "Complaint",
    "disp.order_help": "Order help",
    "disp.info": "Information",
    "disp.other": "Other",

    "val.digits": "Digits only",
    "val.dialable": "A number may contain only digits, +, * and #",

    "wb.queues": "Queues now",
    "wb.seats": "Seats",
    "wb.filter": "Filter by state",
    "wb.all": "All",
    "wb.agent": "Agent",
    "wb.name": "Name",
    "wb.state": "State",
    "wb.reason": "Reason",
    "wb.time": "Time",
    "wb.call": "Call",
    "wb.actions": "Actions",
    "wb.listen": "Listen",
    "wb.whisper": "Whisper",
    "wb.barge": "Barge",
    "wb.force_ready": "Force ready",
    "wb.force_not_ready": "Force not ready",
    "wb.force_logout": "Force log out",
    "wb.empty": "No data",
    "wb.updated": "Updated {time}",

    "err.malformed": "The request was malformed",
    "err.unsupported_version": "Protocol version not supported; reload the page",
    "err.unknown_command": "The server does not support this action",
    "err.login_required": "Please log in first",
    "err.bad_credentials": "Wrong agent ID or password",
    "err.login_timeout": "Login took too long; try again",
    "err.login_paused": "Too many failed logins: logins for this ID are paused; try again later",
    "err.already_logged_in": "This connection is already logged in",
    "err.forbidden": "Your role may not do this",
    "err.rate_limited": "Too many requests; wait a moment",
    "err.too_large": "The message is too large",
    "err.invalid_state": "Not allowed in the seat's current state",
    "err.no_call": "There is no call",
    "err.bad_number": "A number may contain only digits, +, * and #",
    "err.not_found": "Not found (agent, queue, call or account)",
    "err.unavailable": "Telephony is unavailable; try again shortly",
    "err.internal": "Internal server error",
    "err.timeout": "The server did not answer",
    "err.closed": "The connection to the server was lost",
    "err.offline": "Cannot reach the server",
    "err.unknown": "The action failed ({code})",
    "none": "—",
  },
};

function storedLang() {
  try {
    const value = window.localStorage.getItem(STORAGE_KEY);
    return LANGS.includes(value) ? value : "zh";
  } catch {
    return "zh"; // storage may be disabled; the default is fine
  }
}

let current = storedLang();

export function getLang() {
  return current;
}

export function setLang(lang) {
  if (!LANGS.includes(lang)) return;
  current = lang;
  try {
    window.localStorage.setItem(STORAGE_KEY, lang);
  } catch {
    // not remembered, but the switch still works for this page
  }
}

/** The text for `key`, with {name} placeholders filled from `params`; the key if unknown. */
export function t(key, params = {}) {
  const table = STRINGS[current];
  const text = table[key] ?? STRINGS.zh[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (whole, name) =>
    Object.hasOwn(params, name) ? String(params[name]) : whole);
}

/** Whether `key` has a text (used to translate server values like reasons, with a fallback). */
export function has(key) {
  return Object.hasOwn(STRINGS[current], key);
}

/** Translate a value from the server (state, reason, tier...) or show it as it came. */
export function tValue(prefix, value) {
  const key = `${prefix}.${value}`;
  return has(key) ? t(key) : String(value ?? "");
}

/** Fill every static label under `root` in the current language. */
export function applyTranslations(root = document) {
  document.documentElement.lang = current === "zh" ? "zh-CN" : "en";
  for (const el of root.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
  for (const el of root.querySelectorAll("[data-i18n-placeholder]")) {
    el.placeholder = t(el.dataset.i18nPlaceholder);
  }
  for (const el of root.querySelectorAll("[data-i18n-title]")) el.title = t(el.dataset.i18nTitle);
  for (const el of root.querySelectorAll("[data-i18n-aria]")) {
    el.setAttribute("aria-label", t(el.dataset.i18nAria));
  }
  document.title = t("app.title");
}
