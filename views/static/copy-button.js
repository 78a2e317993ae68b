// Copy buttons for values shown once (client secrets, tokens, links): progressive enhancement.
// Without JavaScript the value stays plain text to select and copy by hand; with it, each
// `[data-copy]` element gets a "Copy" button beside it and a polite status message.
// NOTE: served from /static (the CSP allows scripts from 'self' only, never inline).
(function () {
  'use strict';
  function selectText(element) {
    var range = document.createRange();
    range.selectNodeContents(element);
    var selection = window.getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
  }
  function copy(text, element) {
    if (window.navigator.clipboard && window.isSecureContext) return window.navigator.clipboard.writeText(text);
    // Older browsers and plain-http origins: the selection and the legacy command.
    return new Promise(function (resolve, reject) {
      selectText(element);
      try {
        if (document.execCommand('copy')) resolve();
        else reject(new Error('copy refused'));
      } catch (error) {
        reject(error);
      }
    });
  }
  function enhance(element) {
    if (element.dataset.copyReady === 'on') return;
    element.dataset.copyReady = 'on';
    var button = document.createElement('button');
    button.type = 'button';
    button.className = 'button button-secondary copy-button';
    if (element.id) button.setAttribute('aria-controls', element.id);
    // The visible word first, then what it copies (visually hidden): the name contains the label.
    var verb = document.createElement('span');
    verb.textContent = 'Copy';
    var what = document.createElement('span');
    what.className = 'visually-hidden';
    what.textContent = ' ' + (element.getAttribute('data-copy') || 'value');
    button.appendChild(verb);
    button.appendChild(what);
    var status = document.createElement('span');
    status.className = 'copy-status';
    status.setAttribute('role', 'status');
    var timer;
    button.addEventListener('click', function () {
      var text = element.textContent.trim();
      copy(text, element).then(
        function () {
          status.textContent = 'Copied';
          verb.textContent = 'Copied';
        },
        function () {
          // Not allowed here: leave the value selected so that Ctrl+C / Cmd+C copies it.
          selectText(element);
          status.textContent = 'Selected: press Ctrl+C (Cmd+C on a Mac) to copy';
        },
      );
      window.clearTimeout(timer);
      timer = window.setTimeout(function () {
        verb.textContent = 'Copy';
      }, 4000);
    });
    element.parentNode.insertBefore(button, element.nextSibling);
    element.parentNode.insertBefore(status, button.nextSibling);
  }
  function run() {
    var elements = document.querySelectorAll('[data-copy]');
    for (var i = 0; i < elements.length; i += 1) enhance(elements[i]);
  }
  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', run);
  else run();
})();
