//! VERP (variable envelope return path, `verp-default`): each recipient gets its own MAIL FROM
//! that names it, so a bounce arriving later says which recipient it is about even when the
//! receiver's DSN does not. PowerMTA's form: `local+rcptlocal=rcptdomain@senderdomain`.

/// The VERP return path of `sender` for `recipient`; the sender unchanged when either address
/// has no domain (the null sender is never VERPed: it has no mailbox to receive bounces).
pub fn sender_for(sender: &str, recipient: &str) -> String {
    let (Some((local, domain)), Some((r_local, r_domain))) = (sender.rsplit_once('@'), recipient.rsplit_once('@'))
    else {
        return sender.to_string();
    };
    if local.is_empty() || domain.is_empty() || r_local.is_empty() || r_domain.is_empty() {
        return sender.to_string();
    }
    format!("{local}+{r_local}={r_domain}@{domain}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn powermta_form() {
        assert_eq!(sender_for("bounces@sender.example", "john@example.com"), "bounces+john=example.com@sender.example");
        assert_eq!(sender_for("", "john@example.com"), "");
        assert_eq!(sender_for("bounces@sender.example", "postmaster"), "bounces@sender.example");
    }
}
