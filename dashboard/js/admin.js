// Admin actions need the admin key. It is typed into a password field, checked with the server,
// and held only in this tab's memory: never in storage, cookies or the address bar. Reloading the
// page forgets it. The dialogs that go with it (unlock, add a device, a token shown once, "are you
// sure?") are in index.html; this module drives them.

function $(id) {
  return document.getElementById(id);
}

export function makeAdmin({ api, onChange }) {
  let key = null;

  function setKey(value, why = "") {
    key = value;
    document.body.classList.toggle("admin-on", key !== null);
    onChange(why);
  }

  // Cancel is a plain button, so Enter in a field submits rather than cancels.
  for (const b of document.querySelectorAll("dialog [data-close]")) {
    b.addEventListener("click", () => b.closest("dialog").close());
  }
  const unlock = unlockDialog(api, (given) => setKey(given, "Admin actions are on until you lock them or reload the page."));
  const token = tokenDialog();
  const add = addDialog(api, (r) => {
    token.show(r.id, r.token, "Device registered");
    onChange("", r.id);
  });

  return {
    key: () => key,
    active: () => key !== null,
    openUnlock: unlock.open,
    lock(why = "") {
      if (key !== null) setKey(null, why);
    },
    openAddDevice: add.open,
    showToken: token.show,
    confirm: confirmDialog(),
  };
}

// The key is checked with the server before it is taken; `onUnlocked(key)` gets it.
function unlockDialog(api, onUnlocked) {
  const dialog = $("admin-dialog");
  const keyInput = $("admin-key");
  const error = dialog.querySelector(".error");
  dialog.addEventListener("close", () => {
    keyInput.value = "";
  });
  dialog.querySelector("form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const given = keyInput.value.trim();
    if (!given) {
      error.textContent = "Type the admin key.";
      return;
    }
    error.textContent = "Checking…";
    try {
      await api.checkAdmin(given);
    } catch (err) {
      error.textContent =
        err.status === 403 || err.status === 401 ? "The server refused this key." : `Could not check the key: ${err.message}`;
      return;
    }
    keyInput.value = "";
    error.textContent = "";
    dialog.close();
    onUnlocked(given);
  });
  return {
    open() {
      error.textContent = "";
      dialog.showModal();
      keyInput.focus();
    },
  };
}

// Registers a device; `onAdded(answer)` gets the server's answer, token included.
function addDialog(api, onAdded) {
  const dialog = $("add-dialog");
  const form = dialog.querySelector("form");
  const error = dialog.querySelector(".error");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const id = form.elements.id.value.trim();
    const name = form.elements.name.value.trim();
    if (!id || !form.elements.id.checkValidity()) { // the field's pattern is the page's one rule for ids
      error.textContent = "The id is 1 to 64 letters, digits, '_', '.' or '-'.";
      return;
    }
    error.textContent = "Registering…";
    try {
      const r = await api.addDevice(id, name);
      form.reset();
      error.textContent = "";
      dialog.close();
      onAdded(r);
    } catch (err) {
      error.textContent = err.message;
    }
  });
  return {
    open() {
      error.textContent = "";
      dialog.showModal();
      form.elements.id.focus();
    },
  };
}

// A token, shown once with a Copy button. Once closed, the token is gone from the page.
function tokenDialog() {
  const dialog = $("token-dialog");
  const tokenInput = $("token-value");
  const copy = $("token-copy");
  copy.addEventListener("click", async () => {
    tokenInput.select();
    try {
      await navigator.clipboard.writeText(tokenInput.value);
      copy.textContent = "Copied";
    } catch {
      copy.textContent = "Press Ctrl+C";
    }
  });
  dialog.addEventListener("close", () => {
    tokenInput.value = "";
  });
  window.addEventListener("resize", () => dialog.open && fitHeight(tokenInput));
  return {
    show(id, token, title) {
      dialog.querySelector("h2").textContent = title;
      dialog.querySelector(".device").textContent = id;
      tokenInput.value = token;
      copy.textContent = "Copy";
      dialog.showModal();
      fitHeight(tokenInput);
      tokenInput.select();
    },
  };
}

// As tall as its wrapped text: the whole token in sight, at any width.
function fitHeight(box) {
  box.style.height = "auto";
  box.style.height = `${box.scrollHeight + box.offsetHeight - box.clientHeight}px`;
}

// confirm(title, text, checkLabel) resolves to false, or to {checked} when confirmed
// (`checkLabel` adds a checkbox).
function confirmDialog() {
  const ask = $("confirm-dialog");
  return function confirm(title, text, checkLabel = "") {
    ask.querySelector("h2").textContent = title;
    ask.querySelector(".text").textContent = text;
    const option = ask.querySelector(".option");
    const box = option.querySelector("input");
    option.hidden = !checkLabel;
    option.querySelector("span").textContent = checkLabel;
    box.checked = false;
    ask.returnValue = "";
    ask.showModal();
    return new Promise((resolve) => {
      ask.addEventListener("close", () => resolve(ask.returnValue === "ok" ? { checked: box.checked } : false), {
        once: true,
      });
    });
  };
}
