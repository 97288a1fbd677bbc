// The playground page: one column per person, live from /api/events (server-sent events).
// What a person does goes to the server as a JSON POST; the bot gets it by long polling.
// Message HTML arrives sanitised by the server (only Telegram's tags), so it is inserted as is.
"use strict";

const state = { bot: null, people: new Map(), chats: new Map(), keyboards: new Map() };
const columns = new Map();  // person id -> column element
const $ = (root, selector) => root.querySelector(selector);
// a form's field by name (form.name / form.id would be the form's own attributes)
const field = (form, name) => form.elements.namedItem(name);

async function post(path, body) {
  const response = await fetch(path, {
    method: "POST", headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body || {}),
  });
  const answer = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(answer.error || response.statusText);
  return answer;
}

function act(personId, path, body) {
  post(`/api/people/${personId}${path}`, body).catch((error) => toast(personId, error.message, "error"));
}

// --- links: https://t.me/<bot>?start=<payload> opens the bot's chat as a person -------------
function startPayload(href) {
  let url;
  try { url = new URL(href, location.href); } catch { return null; }
  if (!state.bot || !["t.me", "telegram.me"].includes(url.hostname)) return null;
  if (url.pathname.replace(/^\//, "").toLowerCase() !== state.bot.username.toLowerCase()) return null;
  return url.searchParams.get("start") || "";
}

function openLink(href, personId, anchor) {
  const payload = startPayload(href);
  if (payload === null) { window.open(href, "_blank", "noopener"); return; }
  const command = payload ? `/start ${payload}` : "/start";
  const chooser = document.getElementById("chooser");
  const list = $(chooser, ".chooser-people");
  list.replaceChildren();
  const ids = [...state.people.keys()].sort((a, b) => (b === personId) - (a === personId));
  for (const id of ids) {
    const person = state.people.get(id);
    const button = document.createElement("button");
    button.type = "button";
    button.dataset.person = id;
    button.textContent = `${person.name}${person.note ? " · " + person.note : ""}${id === personId ? " (this chat)" : ""}`;
    button.addEventListener("click", () => {
      chooser.hidden = true;
      act(id, "/send", { text: command });
      columns.get(id)?.scrollIntoView({ behavior: "smooth", inline: "nearest" });
    });
    list.append(button);
  }
  const box = anchor.getBoundingClientRect();
  chooser.style.left = `${Math.min(box.left, innerWidth - 240)}px`;
  chooser.style.top = `${Math.min(box.bottom + 4, innerHeight - 200)}px`;
  chooser.hidden = false;
}

document.addEventListener("click", (event) => {
  const chooser = document.getElementById("chooser");
  if (!chooser.hidden && !chooser.contains(event.target) && !event.target.closest("a, .inline .url")) {
    chooser.hidden = true;
  }
});

// --- drawing ----------------------------------------------------------------------------------
function toast(personId, text, kind) {
  const column = columns.get(personId);
  if (!column) return;
  const item = document.createElement("div");
  item.className = `toast${kind ? " " + kind : ""}`;
  item.textContent = text;
  $(column, ".toasts").append(item);
  setTimeout(() => item.remove(), 3500);
}

function alertBox(personId, text) {
  const column = columns.get(personId);
  if (!column) return;
  const overlay = document.createElement("div");
  overlay.className = "alert";
  const box = document.createElement("div");
  box.className = "box";
  box.textContent = text;
  const ok = document.createElement("button");
  ok.type = "button";
  ok.textContent = "OK";
  ok.addEventListener("click", () => overlay.remove());
  box.append(ok);
  overlay.append(box);
  column.append(overlay);
}

function bubble(personId, message) {
  const item = document.createElement("div");
  item.className = `msg ${message.from}`;
  item.dataset.id = message.id;
  const body = document.createElement("div");
  body.className = "bubble";
  if (message.photo) {
    const image = document.createElement("img");
    image.src = message.photo;
    image.alt = "photo";
    body.append(image);
  }
  if (message.document) {
    const link = document.createElement("a");
    link.className = "document";
    link.href = message.document.url;
    link.download = message.document.name;
    link.textContent = `📄 ${message.document.name} (${Math.max(1, Math.round(message.document.size / 1024))} KB)`;
    body.append(link);
  }
  const text = document.createElement("span");
  text.className = "text";
  text.innerHTML = message.html;  // sanitised on the server: Telegram's tags only
  body.append(text);
  if (message.edited) {
    const mark = document.createElement("span");
    mark.className = "edited";
    mark.textContent = "edited";
    body.append(mark);
  }
  body.addEventListener("click", (event) => {
    const spoiler = event.target.closest("tg-spoiler");
    if (spoiler) spoiler.classList.add("shown");
    const anchor = event.target.closest("a[href]");
    if (anchor && !anchor.classList.contains("document")) {
      event.preventDefault();
      openLink(anchor.getAttribute("href"), personId, anchor);
    }
  });
  item.append(body);
  if (message.inline && message.inline.length) {
    const rows = document.createElement("div");
    rows.className = "inline";
    for (const row of message.inline) {
      const line = document.createElement("div");
      line.className = "row";
      for (const button of row) {
        const element = document.createElement("button");
        element.type = "button";
        element.textContent = button.text;
        if (button.url) {
          element.className = "url";
          element.addEventListener("click", () => openLink(button.url, personId, element));
        } else {
          element.dataset.data = button.data;
          element.addEventListener("click", () =>
            act(personId, "/press", { message_id: message.id, data: button.data }));
        }
        line.append(element);
      }
      rows.append(line);
    }
    item.append(rows);
  }
  return item;
}

function drawKeyboard(personId) {
  const column = columns.get(personId);
  if (!column) return;
  const area = $(column, ".keyboard");
  const keyboard = state.keyboards.get(personId);
  area.replaceChildren();
  area.hidden = !keyboard;
  $(column, ".composer input").placeholder = (keyboard && keyboard.placeholder) || "Message";
  if (!keyboard) return;
  for (const row of keyboard.rows) {
    const line = document.createElement("div");
    line.className = "row";
    for (const key of row) {
      const element = document.createElement("button");
      element.type = "button";
      element.textContent = key.text;
      if (key.contact) element.className = "contact";
      element.addEventListener("click", () => {
        if (keyboard.one_time) { state.keyboards.delete(personId); drawKeyboard(personId); }
        if (key.contact) act(personId, "/contact");
        else act(personId, "/send", { text: key.text });
      });
      line.append(element);
    }
    area.append(line);
  }
}

function noteKeyboard(personId, message) {
  if (message.from !== "bot" || !message.keyboard) return;
  if (message.keyboard.remove) state.keyboards.delete(personId);
  else state.keyboards.set(personId, message.keyboard);
}

function drawPerson(person) {
  let column = columns.get(person.id);
  if (!column) {
    column = document.getElementById("column").content.firstElementChild.cloneNode(true);
    column.dataset.person = person.id;
    columns.set(person.id, column);
    document.getElementById("chats").append(column);
    $(column, ".language").addEventListener("change", (event) =>
      act(person.id, "", { language: event.target.value }));
    $(column, ".gear").addEventListener("click", () => {
      const form = $(column, ".settings");
      form.hidden = !form.hidden;
    });
    $(column, ".settings").addEventListener("submit", (event) => {
      event.preventDefault();
      const form = event.target;
      act(person.id, "", { name: field(form, "name").value, phone: field(form, "phone").value });
      form.hidden = true;
    });
    $(column, ".composer").addEventListener("submit", (event) => {
      event.preventDefault();
      const input = field(event.target, "text");
      if (!input.value.trim()) return;
      act(person.id, "/send", { text: input.value });
      input.value = "";
    });
  }
  column.dataset.language = person.language;
  $(column, ".name").textContent = person.name;
  $(column, ".note").textContent = person.note || "";
  const language = $(column, ".language");
  if (![...language.options].some((option) => option.value === person.language)) {
    language.append(new Option(person.language, person.language));
  }
  language.value = person.language;
  const form = $(column, ".settings");
  field(form, "name").value = person.name;
  field(form, "phone").value = person.phone;
  $(form, ".id code").textContent = person.id;
}

function drawChat(personId) {
  const column = columns.get(personId);
  if (!column) return;
  const list = $(column, ".messages");
  list.replaceChildren(...(state.chats.get(personId) || []).map((m) => bubble(personId, m)));
  list.scrollTop = list.scrollHeight;
  drawKeyboard(personId);
}

// --- events -----------------------------------------------------------------------------------
function onEvent(event) {
  if (event.type === "state") {
    state.bot = event.bot;
    document.getElementById("bot-name").textContent = `@${event.bot.username}`;
    state.people.clear(); state.chats.clear(); state.keyboards.clear();
    for (const column of columns.values()) column.remove();
    columns.clear();
    for (const person of event.people) state.people.set(person.id, person);
    for (const [id, messages] of Object.entries(event.chats)) {
      state.chats.set(Number(id), messages);
      for (const message of messages) noteKeyboard(Number(id), message);
    }
    for (const person of state.people.values()) { drawPerson(person); drawChat(person.id); }
  } else if (event.type === "person") {
    state.people.set(event.person.id, event.person);
    const isNew = !columns.has(event.person.id);
    drawPerson(event.person);
    if (isNew) drawChat(event.person.id);
  } else if (event.type === "message" || event.type === "edit") {
    const chat = state.chats.get(event.person) || [];
    state.chats.set(event.person, chat);
    const index = chat.findIndex((m) => m.from === "bot" && m.id === event.message.id);
    if (event.type === "edit" && index >= 0) chat[index] = event.message;
    else chat.push(event.message);
    if (event.type === "message") noteKeyboard(event.person, event.message);
    const column = columns.get(event.person);
    if (!column) return;
    const list = $(column, ".messages");
    const fresh = bubble(event.person, event.message);
    const old = event.type === "edit" && list.querySelector(`.msg.bot[data-id="${event.message.id}"]`);
    if (old) old.replaceWith(fresh);
    else { list.append(fresh); list.scrollTop = list.scrollHeight; }
    drawKeyboard(event.person);
  } else if (event.type === "delete") {
    const chat = state.chats.get(event.person) || [];
    state.chats.set(event.person, chat.filter((m) => !(m.from === "bot" && m.id === event.id)));
    const column = columns.get(event.person);
    column?.querySelector(`.msg.bot[data-id="${event.id}"]`)?.remove();
  } else if (event.type === "answer") {
    if (event.alert) alertBox(event.person, event.text);
    else toast(event.person, event.text);
  }
}

function connect() {
  const status = document.getElementById("status");
  const source = new EventSource("/api/events");
  source.onopen = () => { status.textContent = "live"; status.classList.add("live"); };
  source.onerror = () => { status.textContent = "reconnecting…"; status.classList.remove("live"); };
  source.onmessage = (message) => onEvent(JSON.parse(message.data));
}

// --- adding a person --------------------------------------------------------------------------
const addForm = document.getElementById("add-form");
document.getElementById("add-person").addEventListener("click", () => {
  addForm.hidden = !addForm.hidden;
  if (!addForm.hidden) {
    field(addForm, "id").value = Math.max(4000, ...state.people.keys()) + 1;
    field(addForm, "name").focus();
  }
});
document.getElementById("add-cancel").addEventListener("click", () => { addForm.hidden = true; });
addForm.addEventListener("submit", async (event) => {
  event.preventDefault();
  try {
    await post("/api/people", {
      name: field(addForm, "name").value, id: Number(field(addForm, "id").value), phone: field(addForm, "phone").value,
      language: field(addForm, "language").value, note: field(addForm, "note").value,
    });
    addForm.reset();
    addForm.hidden = true;
  } catch (error) {
    window.alert(error.message);
  }
});

connect();
