//! The service extensions a server lists in its EHLO reply (RFC 5321 §4.1.1.1).

use crate::smtp::Reply;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Extensions {
    /// Every keyword, upper case, in the server's order, without repeats.
    pub keywords: Vec<String>,
    pub pipelining: bool,
    pub chunking: bool,
    pub eight_bit_mime: bool,
    pub dsn: bool,
    pub smtputf8: bool,
    pub starttls: bool,
    /// `SIZE` was listed; its limit when one was given (0 means none).
    pub size: Option<u64>,
    /// AUTH mechanisms, upper case (`AUTH PLAIN LOGIN` and the old `AUTH=PLAIN LOGIN`).
    pub auth: Vec<String>,
}

impl Extensions {
    /// Reads the lines after the first (which names the server).
    pub fn parse(reply: &Reply) -> Extensions {
        let mut ext = Extensions::default();
        for line in reply.text.split('\n').skip(1) {
            let mut words = line.split([' ', '=']).filter(|w| !w.is_empty());
            let Some(keyword) = words.next() else { continue };
            let keyword = keyword.to_ascii_uppercase();
            if !keyword.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
                continue;
            }
            match keyword.as_str() {
                "PIPELINING" => ext.pipelining = true,
                "CHUNKING" => ext.chunking = true,
                "8BITMIME" => ext.eight_bit_mime = true,
                "DSN" => ext.dsn = true,
                "SMTPUTF8" => ext.smtputf8 = true,
                "STARTTLS" => ext.starttls = true,
                "SIZE" => ext.size = Some(words.next().and_then(|w| w.parse().ok()).unwrap_or(0)),
                "AUTH" => {
                    for mech in words {
                        let mech = mech.to_ascii_uppercase();
                        if !ext.auth.contains(&mech) {
                            ext.auth.push(mech);
                        }
                    }
                }
                _ => {}
            }
            if !ext.keywords.contains(&keyword) {
                ext.keywords.push(keyword);
            }
        }
        ext
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keywords_and_parameters() {
        let reply = Reply::new(
            250,
            "",
            "mx.example.com greets you\npipelining\nSIZE 35882577\n8BITMIME\nAUTH PLAIN login\nAUTH=PLAIN XOAUTH2\n\
             ENHANCEDSTATUSCODES\nDSN\nCHUNKING\nSMTPUTF8\nSTARTTLS\nX-EXPS=LOGIN\n",
        );
        let e = Extensions::parse(&reply);
        assert!(e.pipelining && e.chunking && e.eight_bit_mime && e.dsn && e.smtputf8 && e.starttls);
        assert_eq!(e.size, Some(35882577));
        assert_eq!(e.auth, ["PLAIN", "LOGIN", "XOAUTH2"]);
        assert_eq!(
            e.keywords.join(","),
            "PIPELINING,SIZE,8BITMIME,AUTH,ENHANCEDSTATUSCODES,DSN,CHUNKING,SMTPUTF8,STARTTLS,X-EXPS"
        );
        let e = Extensions::parse(&Reply::new(250, "", "mx hello\nSIZE"));
        assert_eq!(e.size, Some(0));
        assert_eq!(Extensions::parse(&Reply::new(250, "", "mx hello")), Extensions::default());
    }
}
