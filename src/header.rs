//! Header fields a strict mail server takes whatever text they are given: lines folded
//! within 78 columns where lettre leaves them long (a word without a space in the subject, a
//! list of addresses, a display name of one long word), and words that only look encoded
//! (`=?utf-8?q?...?=`) written encoded, so that every reader shows what was rendered.
//!
//! Where lettre's own encoding fits, it is kept byte for byte.

use base64::Engine as _;
use lettre::message::header::{Header, HeaderValue, Headers};
use lettre::message::{Mailbox, Mailboxes};

/// RFC 5322's recommended length of a line (the limit is 998).
const LINE: usize = 78;

/// Bytes of text in one encoded-word: its base64 (48 columns) in the charset's frame is 60,
/// which fits a folded line after any header's name.
const CHUNK: usize = 36;

/// The `Subject` field for `text` (one line, control characters removed), when lettre's
/// would not do: `None` keeps lettre's.
pub fn subject(text: &str) -> Option<HeaderValue> {
    let name = lettre::message::header::Subject::name();
    let lettre = encoded(lettre::message::header::Subject::from(text.to_string()));
    // A word of ours that a reader would decode as an encoded-word shows other text than
    // the one rendered (or none, when it is no valid one).
    let looks_encoded = text.split(' ').any(|w| w.contains("=?"));
    if fits(&name, &lettre) && !looks_encoded {
        return None;
    }
    Some(HeaderValue::dangerous_new_pre_encoded(
        name.clone(),
        text.to_string(),
        folded_text(&name, text),
    ))
}

/// The longest word written as it is: with a header's name before it, it fits a line.
const PLAIN_WORD: usize = 60;

/// Whether `word` goes in a header as it is: printable ASCII, short enough for a line, and
/// nothing a reader would take for the start of an encoded-word.
fn plain(word: &str) -> bool {
    word.len() <= PLAIN_WORD
        && word.bytes().all(|b| (0x21..0x7f).contains(&b))
        && !word.contains("=?")
}

/// Text of words between single spaces, folded within [`LINE`]: its plain words as they are,
/// each run of others (with the spaces inside the run) in encoded-words, which a reader joins
/// again. A space between a plain word and an encoded-word is kept by readers; between two
/// encoded-words it is not, and none is there but the ones the run holds.
fn folded_text(name: &str, text: &str) -> String {
    let words: Vec<&str> = text.split(' ').collect();
    let mut tokens: Vec<String> = Vec::new();
    let mut i = 0;
    while i < words.len() {
        if plain(words[i]) {
            tokens.push(words[i].to_string());
            i += 1;
            continue;
        }
        let end = (i..words.len())
            .find(|&j| plain(words[j]))
            .unwrap_or(words.len());
        tokens.extend(encoded_words(&words[i..end].join(" ")));
        i = end;
    }
    laid_out(name, &tokens, "")
}

/// `tokens` (words, addresses, perhaps folded within) after `name: `, each followed by
/// `after` but the last, and each on the line before it where it fits there (`after`
/// included), on a folded line of its own where not.
fn laid_out(name: &str, tokens: &[String], after: &str) -> String {
    let mut value = String::new();
    let mut column = name.len() + ": ".len();
    for (i, token) in tokens.iter().enumerate() {
        let first = token.split("\r\n").next().unwrap_or_default().len();
        if i > 0 {
            value.push_str(after);
            if column + after.len() + " ".len() + first + after.len() <= LINE {
                value.push(' ');
                column += after.len() + " ".len();
            } else {
                value.push_str("\r\n ");
                column = " ".len();
            }
        }
        value.push_str(token);
        column = match token.rsplit_once("\r\n") {
            Some((_, last)) => last.len(),
            None => column + token.len(),
        };
    }
    value
}

/// A field of addresses (`From`, `To`, `Cc`, `Reply-To`) holding `list`, when lettre's would
/// not do: lettre puts every address on one line, and a display name of one word on one
/// line however long. `None` keeps lettre's.
pub fn mailboxes<H: Header + From<Mailboxes>>(list: &[Mailbox]) -> Option<HeaderValue> {
    let name = H::name();
    let all: Mailboxes = list.iter().cloned().collect();
    if fits(&name, &encoded(H::from(all.clone()))) {
        return None;
    }
    let each: Vec<String> = list.iter().map(one_mailbox::<H>).collect();
    let value = laid_out(&name, &each, ",");
    Some(HeaderValue::dangerous_new_pre_encoded(
        name,
        all.to_string(),
        value,
    ))
}

/// One address as lettre encodes it; where that is too long for a line, the address on a
/// line of its own after the display name, which lettre folds at its spaces; and a name
/// with a word too long for any line in encoded-words.
fn one_mailbox<H: Header + From<Mailboxes>>(mailbox: &Mailbox) -> String {
    let lettre = encoded(H::from(Mailboxes::from(mailbox.clone())));
    let Some(name) = mailbox.name.as_ref().filter(|_| !fits(&H::name(), &lettre)) else {
        return lettre;
    };
    let address = format!("<{}>", mailbox.email);
    if let Some(named) = lettre.strip_suffix(&format!(" {address}"))
        && fits(&H::name(), named)
    {
        return format!("{named}\r\n {address}");
    }
    format!("{}\r\n {address}", encoded_words(name).join("\r\n "))
}

/// The value lettre writes for `header`, folded as it folds it.
fn encoded(header: impl Header) -> String {
    let mut headers = Headers::new();
    headers.set(header);
    let text = headers.to_string();
    let value = text.split_once(": ").map_or(text.as_str(), |(_, v)| v);
    value.strip_suffix("\r\n").unwrap_or(value).to_string()
}

/// Whether every line of the field `name: value` is within [`LINE`].
fn fits(name: &str, value: &str) -> bool {
    let mut lines = value.split("\r\n");
    let first = lines.next().unwrap_or_default();
    name.len() + ": ".len() + first.len() <= LINE && lines.all(|l| l.len() <= LINE)
}

/// `text` as RFC 2047 encoded-words of whole characters: adjacent encoded-words are read
/// as one text, the white space between them no part of it.
fn encoded_words(text: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        let mut end = rest.len().min(CHUNK);
        while !rest.is_char_boundary(end) {
            end -= 1;
        }
        let (chunk, after) = rest.split_at(end);
        let b64 = base64::engine::general_purpose::STANDARD.encode(chunk);
        words.push(format!("=?utf-8?b?{b64}?="));
        rest = after;
    }
    words
}

#[cfg(test)]
mod tests {
    use super::*;
    use lettre::message::header::{Cc, From, Subject, To};
    use proptest::prelude::*;

    /// What a reader decodes from a field value of plain words and encoded-words, as RFC
    /// 2047 says: folds are white space; white space between two adjacent encoded-words is
    /// no part of the text, between an encoded-word and a plain word it is.
    fn decoded(value: &str) -> String {
        let unfolded = value.replace("\r\n ", " ");
        let mut text = String::new();
        let mut bytes: Vec<u8> = Vec::new();
        let mut last_encoded = false;
        for (n, token) in unfolded.split(' ').enumerate() {
            let b64 = (token.strip_prefix("=?utf-8?b?")).and_then(|w| w.strip_suffix("?="));
            match b64 {
                Some(b64) => {
                    if n > 0 && !last_encoded {
                        text.push(' ');
                    }
                    let raw = base64::engine::general_purpose::STANDARD.decode(b64);
                    bytes.extend(raw.expect("base64"));
                    last_encoded = true;
                }
                None => {
                    text.push_str(&String::from_utf8(std::mem::take(&mut bytes)).expect("whole"));
                    if n > 0 {
                        text.push(' ');
                    }
                    text.push_str(token);
                    last_encoded = false;
                }
            }
        }
        text.push_str(&String::from_utf8(bytes).expect("whole characters"));
        text
    }

    fn value_of(header: &HeaderValue) -> String {
        let mut headers = Headers::new();
        headers.insert_raw(header.clone());
        let text = headers.to_string();
        let (_, value) = text.split_once(": ").unwrap();
        value.strip_suffix("\r\n").unwrap().to_string()
    }

    #[test]
    fn a_subject_lettre_folds_well_is_left_to_it() {
        for text in [
            "Abuse from 3.5.140.2",
            "Missbrauch: Angriffe von 3 Adressen – bitte prüfen",
        ] {
            assert!(subject(text).is_none(), "{text}");
        }
    }

    #[test]
    fn a_subject_of_a_long_word_is_folded_in_encoded_words() {
        let ips = (0..120)
            .map(|i| format!("2600:1f18:4a3:6901:1:abcd:ef01:{i:04x}"))
            .collect::<Vec<_>>()
            .join(",");
        let text = format!("Abuse from {ips}");
        let value = value_of(&subject(&text).expect("folded here"));
        assert!(fits("Subject", &value), "{value}");
        assert_eq!(decoded(&value), text);
    }

    /// The word alone is encoded: a subject all in base64 is a spam filter's sign.
    #[test]
    fn a_subject_word_that_looks_encoded_is_encoded() {
        let text = "=?utf-8?q?Totally_legit?= from 4 hosts";
        let value = value_of(&subject(text).expect("encoded here"));
        assert!(
            value.starts_with("=?utf-8?b?") && value.ends_with("?= from 4 hosts"),
            "{value}"
        );
        assert_eq!(decoded(&value), text);
    }

    /// A display name of words too long for a line with its address: the name as lettre
    /// folds it (at its spaces), the address on a line of its own; nothing encoded (it was
    /// cut into encoded-words mid-word, which a reader showed with spaces in the words). A
    /// short name before a long address: the address on its own line.
    #[test]
    fn a_long_display_name_of_words_is_folded_not_encoded() {
        for text in [
            "Example Hosting GmbH Network Operations Center Abuse Team <abuse@example-hosting.de>",
            "Abuse <abuse-desk-of-a-very-long-organisation-name-department@subdomain.example.org>",
        ] {
            let from: Mailbox = text.parse().unwrap();
            let value = value_of(&mailboxes::<From>(std::slice::from_ref(&from)).unwrap());
            assert!(!value.contains("=?"), "{value}");
            let (named, address) = value.rsplit_once("\r\n ").unwrap();
            assert!(fits("From", named), "{value}");
            assert_eq!(address, format!("<{}>", from.email));
            let again: Mailbox = value.replace("\r\n", "").parse().unwrap();
            assert_eq!(again, from);
        }
    }

    #[test]
    fn a_list_of_addresses_is_folded_between_them() {
        let list: Vec<Mailbox> = (0..30)
            .map(|i| {
                format!("abuse-archive-{i:02}@reports.example.org")
                    .parse()
                    .unwrap()
            })
            .collect();
        let value = value_of(&mailboxes::<Cc>(&list).expect("folded here"));
        assert!(fits("Cc", &value), "{value}");
        let again: Mailboxes = value.replace("\r\n", "").parse().unwrap();
        assert_eq!(again.into_iter().collect::<Vec<_>>(), list);
        // Three short ones on a line stay lettre's.
        assert!(mailboxes::<To>(&list[..1]).is_none());
    }

    #[test]
    fn a_display_name_of_one_long_word_is_encoded() {
        let name = "X".repeat(1200);
        let from: Mailbox = format!("{name} <abuse@example.org>").parse().unwrap();
        let value = value_of(&mailboxes::<From>(std::slice::from_ref(&from)).unwrap());
        assert!(fits("From", &value), "{value}");
        let (words, address) = value.rsplit_once("\r\n ").unwrap();
        assert_eq!(address, "<abuse@example.org>");
        assert_eq!(decoded(words), name);
    }

    proptest! {
        /// Whatever the text, the subject's lines fit, and a reader decodes the text.
        #[test]
        fn every_subject_fits_and_reads_as_rendered(
            words in proptest::collection::vec("[ -~]{0,120}|[a-zé€😀=?]{0,90}", 0..12)
        ) {
            let text = words.join(" ").split_whitespace().collect::<Vec<_>>().join(" ");
            match subject(&text) {
                Some(header) => {
                    let value = value_of(&header);
                    prop_assert!(fits("Subject", &value), "{}", value);
                    prop_assert_eq!(decoded(&value), text);
                }
                None => prop_assert!(fits("Subject", &encoded(Subject::from(text.clone())))),
            }
        }
    }
}
