package jobs

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/surge-commerce/surge/internal/drop"
	"github.com/surge-commerce/surge/internal/mail"
	"github.com/surge-commerce/surge/internal/notify"
)

// content is what every message of a job has in common.
type content struct {
	subject, body string
}

// content writes the text of j's messages; the recipient's links go in
// per message.
func (r *Runner) content(ctx context.Context, j Job) (content, error) {
	d, err := r.src.DropByID(ctx, j.DropID)
	if err != nil {
		return content{}, err
	}
	link := r.cfg.PublicURL + "/drops/" + d.Slug
	when := d.StartsAt.UTC().Format("Monday 2 January, 15:04 MST")
	var b strings.Builder
	var subject string
	switch j.Kind {
	case KindReminder:
		subject = d.Name + " opens " + when
		fmt.Fprintf(&b, "Hello,\n\n%s opens on %s.\n", d.Name, when)
		if d.Room.PreQueueOpens > 0 {
			fmt.Fprintf(&b, "The line opens %s before: everyone who joins before the start gets a random place, so there is no need to rush.\n",
				time.Duration(d.Room.PreQueueOpens))
		}
		fmt.Fprintf(&b, "\n%s\n", link)
	default:
		subject = d.Name + " has sold out"
		fmt.Fprintf(&b, "Hello,\n\n%s has sold out. Thank you for waiting with us.\n", d.Name)
		if next, ok, err := r.nextDrop(ctx, d); err != nil {
			return content{}, err
		} else if ok {
			fmt.Fprintf(&b, "\nThe next drop is %s, on %s:\n%s/drops/%s\n", next.Name,
				next.StartsAt.UTC().Format("Monday 2 January, 15:04 MST"), r.cfg.PublicURL, next.Slug)
		} else {
			fmt.Fprintf(&b, "\nThe next drops will be announced at %s/drops\n", r.cfg.PublicURL)
		}
	}
	return content{subject: subject, body: b.String()}, nil
}

// nextDrop is the scheduled drop starting soonest, other than d.
func (r *Runner) nextDrop(ctx context.Context, d drop.Drop) (drop.Drop, bool, error) {
	ds, err := r.src.Drops(ctx)
	if err != nil {
		return drop.Drop{}, false, err
	}
	now := r.cfg.Now()
	var next drop.Drop
	found := false
	for _, o := range ds {
		if o.ID == d.ID || o.StateAt(now) != drop.StateScheduled {
			continue
		}
		if !found || o.StartsAt.Before(next.StartsAt) {
			next, found = o, true
		}
	}
	return next, found, nil
}

// message is c addressed to one recipient, with its unsubscribe link and
// a Message-ID that is the same every time this recipient of this job is
// sent to.
func (c content) message(r *Runner, j Job, rc notify.Recipient) mail.Message {
	unsub := notify.UnsubscribeURL(r.cfg.PublicURL, rc.UnsubscribeToken)
	m := mail.Message{
		To:        rc.Email,
		Subject:   c.subject,
		Text:      c.body + "\nNo more mail about this drop: " + unsub + "\n\n" + r.cfg.ShopName + "\n",
		MessageID: MessageID(j.ID, rc.SubscriptionID, r.cfg.MessageDomain),
	}
	if r.cfg.PublicURL != "" {
		// The header needs an absolute URL.
		m.Unsubscribe = unsub
	}
	return m
}

// MessageID is the Message-ID of job's message to a subscription.
func MessageID(jobID, subscriptionID int64, domain string) string {
	return "job-" + strconv.FormatInt(jobID, 10) + ".sub-" + strconv.FormatInt(subscriptionID, 10) + "@" + domain
}
